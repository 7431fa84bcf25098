using System.Text.RegularExpressions;

namespace EphemeralCI.SecretsBroker.Policies;

/// <summary>Why a job was not given a secret it asked for.</summary>
public enum PolicyDecision
{
    Allowed,
    RepositoryNotAllowed,
    RefNotAllowed,
    EnvironmentNotAllowed,
}

/// <summary>
/// Which jobs may receive a secret: repository globs (<c>acme/*</c>), ref globs (<c>refs/heads/main</c>,
/// <c>refs/tags/v*</c>) and an optional environment. <c>*</c> matches within one path segment and
/// <c>**</c> across segments, so <c>refs/heads/*</c> does not admit <c>refs/heads/feature/x</c> by accident.
/// Matching is case-sensitive for refs (git refs are) and case-insensitive for repositories (forges treat them so).
/// </summary>
public static class SecretPolicy
{
    public static PolicyDecision Evaluate(
        IReadOnlyCollection<string> repositoryPatterns, IReadOnlyCollection<string> refPatterns, string? requiredEnvironment,
        string repository, string gitRef, string? environment)
    {
        if (!repositoryPatterns.Any(p => GlobMatches(p, repository, ignoreCase: true))) return PolicyDecision.RepositoryNotAllowed;
        if (!refPatterns.Any(p => GlobMatches(p, gitRef, ignoreCase: false))) return PolicyDecision.RefNotAllowed;
        if (!string.IsNullOrEmpty(requiredEnvironment) && !string.Equals(requiredEnvironment, environment, StringComparison.Ordinal))
        {
            return PolicyDecision.EnvironmentNotAllowed;
        }
        return PolicyDecision.Allowed;
    }

    public static bool GlobMatches(string pattern, string value, bool ignoreCase)
    {
        if (string.IsNullOrEmpty(value)) return false;
        var regex = "^" + Regex.Escape(pattern)
            .Replace(@"\*\*", "\u0001", StringComparison.Ordinal)
            .Replace(@"\*", "[^/]*", StringComparison.Ordinal)
            .Replace(@"\?", "[^/]", StringComparison.Ordinal)
            .Replace("\u0001", ".*", StringComparison.Ordinal) + "$";
        var options = RegexOptions.CultureInvariant | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None);
        return Regex.IsMatch(value, regex, options, TimeSpan.FromMilliseconds(100));
    }

    /// <summary>Null when the pattern is acceptable, else why not.</summary>
    public static string? ValidatePattern(string? pattern)
    {
        if (string.IsNullOrWhiteSpace(pattern)) return "must not be empty";
        if (pattern.Length > 256) return "must be at most 256 characters";
        if (pattern.Any(char.IsControl) || pattern.Any(char.IsWhiteSpace)) return "must not contain whitespace or control characters";
        return null;
    }
}
