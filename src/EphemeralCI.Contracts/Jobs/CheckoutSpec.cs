using System.Text.Json;
using System.Text.Json.Serialization;

namespace EphemeralCI.Contracts.Jobs;

/// <summary>
/// How the job's commit is put into the workspace before the first step: <c>checkout: false</c> skips it, <c>true</c>
/// (or leaving it out) takes the defaults, an object sets <c>depth</c> (default 1; 0 = full history), <c>submodules</c>
/// (<c>false</c>, <c>true</c> or <c>recursive</c>), <c>lfs</c> and <c>path</c> (a folder of the workspace).
/// </summary>
[JsonConverter(typeof(CheckoutSpecJsonConverter))]
public sealed record CheckoutSpec
{
    public const int DefaultDepth = 1;

    /// <summary>False for <c>checkout: false</c>.</summary>
    public bool Enabled { get; init; } = true;
    /// <summary>Commits of history to fetch; 0 for all. Null: <see cref="DefaultDepth"/>.</summary>
    public int? Depth { get; init; }
    /// <summary><c>false</c>, <c>true</c> or <c>recursive</c>; null: false.</summary>
    public string? Submodules { get; init; }
    /// <summary>Fetch Git LFS objects (needs git-lfs in the runner).</summary>
    public bool? Lfs { get; init; }
    /// <summary>A relative folder of the workspace to check out into; null: the workspace itself.</summary>
    public string? Path { get; init; }

    public static readonly CheckoutSpec Default = new();
    public static readonly CheckoutSpec Skip = new() { Enabled = false };
}

/// <summary>Reads <c>false</c>, <c>true</c> or an object; writes <c>false</c> or the object.</summary>
public sealed class CheckoutSpecJsonConverter : JsonConverter<CheckoutSpec>
{
    public override CheckoutSpec? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.False: return CheckoutSpec.Skip;
            case JsonTokenType.True: return CheckoutSpec.Default;
            case JsonTokenType.StartObject: break;
            default: throw new JsonException("checkout must be false, true or an object {depth, submodules, lfs, path}");
        }
        var spec = new CheckoutSpec();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString() ?? "";
            reader.Read();
            switch (name.ToLowerInvariant())
            {
                case "depth":
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var depth)) throw new JsonException("checkout.depth must be a whole number");
                    spec = spec with { Depth = depth };
                    break;
                case "submodules":
                    spec = spec with
                    {
                        Submodules = reader.TokenType switch
                        {
                            JsonTokenType.True => "true",
                            JsonTokenType.False => "false",
                            JsonTokenType.String => reader.GetString(),
                            JsonTokenType.Null => null,
                            _ => throw new JsonException("checkout.submodules must be false, true or \"recursive\""),
                        },
                    };
                    break;
                case "lfs":
                    spec = spec with
                    {
                        Lfs = reader.TokenType switch
                        {
                            JsonTokenType.True => true,
                            JsonTokenType.False => false,
                            JsonTokenType.Null => null,
                            _ => throw new JsonException("checkout.lfs must be true or false"),
                        },
                    };
                    break;
                case "path":
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Null)) throw new JsonException("checkout.path must be a string");
                    spec = spec with { Path = reader.GetString() };
                    break;
                case "enabled":
                    if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False)) throw new JsonException("checkout.enabled must be true or false");
                    spec = spec with { Enabled = reader.GetBoolean() };
                    break;
                default:
                    throw new JsonException($"checkout has no field '{name}' (depth, submodules, lfs, path)");
            }
        }
        return spec;
    }

    public override void Write(Utf8JsonWriter writer, CheckoutSpec value, JsonSerializerOptions options)
    {
        if (!value.Enabled)
        {
            writer.WriteBooleanValue(false);
            return;
        }
        writer.WriteStartObject();
        if (value.Depth is { } depth) writer.WriteNumber("depth", depth);
        if (value.Submodules is { } submodules) writer.WriteString("submodules", submodules);
        if (value.Lfs is { } lfs) writer.WriteBoolean("lfs", lfs);
        if (value.Path is { } path) writer.WriteString("path", path);
        writer.WriteEndObject();
    }
}
