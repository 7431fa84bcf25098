using System.Diagnostics.CodeAnalysis;

namespace EphemeralCI.Cache.BuildCache;

/// <summary>Bazel's two stores: action results (any content) and content-addressed blobs.</summary>
public enum BuildCacheKind
{
    /// <summary><c>/ac/</c>: action cache; the hash names an action, the body is its result.</summary>
    ActionCache,
    /// <summary><c>/cas/</c>: content-addressable storage; the hash is the SHA-256 of the body.</summary>
    ContentAddressable,
}

/// <summary>A validated <c>/{kind}/{hash}</c> of the HTTP build-cache protocol.</summary>
public readonly record struct BuildCacheAddress(BuildCacheKind Kind, string Hash)
{
    public const int HashLength = 64;

    /// <summary>
    /// Action-cache keys only name an action, so they may be other digests than SHA-256: Gradle's build-cache keys are
    /// 32 hex digits (MD5), Bazel's and ccache's (<c>layout=bazel</c>) 64. CAS keys stay SHA-256: the body is checked against them.
    /// </summary>
    public const int MinActionKeyLength = 32;
    public const int MaxActionKeyLength = 128;

    /// <summary>Parses the route values; on failure <paramref name="errors"/> maps each bad field to its reason.</summary>
    public static bool TryParse(string? kind, string? hash, out BuildCacheAddress address,
        [NotNullWhen(false)] out Dictionary<string, string[]>? errors)
    {
        address = default;
        errors = null;
        BuildCacheKind parsedKind = default;
        switch (kind)
        {
            case "ac": parsedKind = BuildCacheKind.ActionCache; break;
            case "cas": parsedKind = BuildCacheKind.ContentAddressable; break;
            default:
                (errors ??= [])["kind"] = ["must be 'ac' or 'cas'"];
                break;
        }
        if (kind == "ac" ? !IsActionKey(hash) : !IsSha256Hex(hash))
        {
            (errors ??= [])["hash"] = [kind == "ac"
                ? $"must be an action key: {MinActionKeyLength} to {MaxActionKeyLength} lowercase hexadecimal characters"
                : $"must be a SHA-256 digest: {HashLength} lowercase hexadecimal characters"];
        }
        if (errors is not null) return false;
        address = new BuildCacheAddress(parsedKind, hash!);
        return true;
    }

    /// <summary>32 to 128 of [0-9a-f] (an action key from any digest: MD5, SHA-1 padded, SHA-256, SHA-512).</summary>
    public static bool IsActionKey([NotNullWhen(true)] string? value) =>
        value is { Length: >= MinActionKeyLength and <= MaxActionKeyLength } && value.AsSpan().IndexOfAnyExcept("0123456789abcdef") < 0;

    /// <summary>Exactly 64 of [0-9a-f]; uppercase is refused so one digest has one key.</summary>
    public static bool IsSha256Hex([NotNullWhen(true)] string? value) =>
        value is { Length: HashLength } && value.AsSpan().IndexOfAnyExcept("0123456789abcdef") < 0;
}

public static class BuildCacheKindExtensions
{
    public static string ToPathSegment(this BuildCacheKind kind) => kind switch
    {
        BuildCacheKind.ActionCache => "ac",
        BuildCacheKind.ContentAddressable => "cas",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
