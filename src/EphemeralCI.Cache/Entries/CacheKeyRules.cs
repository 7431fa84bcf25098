using EphemeralCI.Cache.Infrastructure;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// What a key, a restore key and a version may look like; the same rules for every protocol.
/// Keys are names, never paths (objects are stored by entry id), but a key that reads like a path
/// escape ('..' segments) or carries control characters is refused anyway: it is almost certainly
/// an attack or a bug, and such keys end up in logs and archive names of other tools.
/// </summary>
public static class CacheKeyRules
{
    /// <summary>At most this many keys (primary plus restore keys) per lookup, as the toolkit enforces.</summary>
    public const int MaxKeysPerLookup = 10;

    /// <summary>Null when <paramref name="key"/> is acceptable, else the reason.</summary>
    public static string? CheckKey(string? key)
    {
        if (string.IsNullOrEmpty(key)) return "must not be empty";
        if (key.Length > CacheEntry.MaxKeyLength) return $"must be at most {CacheEntry.MaxKeyLength} characters (got {key.Length})";
        if (key.Contains(',', StringComparison.Ordinal)) return "must not contain commas";
        if (key.Any(char.IsControl)) return "must not contain control characters";
        if (key.Split('/', '\\').Any(segment => segment == "..")) return "must not contain '..' path segments";
        return null;
    }

    /// <summary>Null when <paramref name="version"/> is acceptable: the toolkit sends 64 hex characters; others may send any short printable token.</summary>
    public static string? CheckVersion(string? version)
    {
        if (string.IsNullOrEmpty(version)) return "must not be empty";
        if (version.Length > CacheEntry.MaxVersionLength) return $"must be at most {CacheEntry.MaxVersionLength} characters";
        if (version.Any(c => char.IsControl(c) || char.IsWhiteSpace(c))) return "must not contain whitespace or control characters";
        return null;
    }

    /// <summary>Checks a primary key and its restore keys; returns field → reasons, or null when all are fine.</summary>
    public static Dictionary<string, string[]>? CheckLookup(string? key, IReadOnlyList<string> restoreKeys, string? version,
        string keyField = "key", string restoreKeysField = "restore_keys", string versionField = "version")
    {
        Dictionary<string, string[]>? errors = null;
        if (CheckKey(key) is { } keyError) (errors ??= [])[keyField] = [keyError];
        if (CheckVersion(version) is { } versionError) (errors ??= [])[versionField] = [versionError];
        if (restoreKeys.Count + 1 > MaxKeysPerLookup)
        {
            (errors ??= [])[restoreKeysField] = [$"at most {MaxKeysPerLookup - 1} restore keys are allowed"];
        }
        var restoreErrors = restoreKeys.Select((k, i) => CheckKey(k) is { } e ? $"[{i}] {e}" : null).OfType<string>().ToArray();
        if (restoreErrors.Length > 0) (errors ??= [])[restoreKeysField] = restoreErrors;
        return errors;
    }
}
