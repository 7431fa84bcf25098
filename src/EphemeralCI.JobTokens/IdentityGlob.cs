using System.Text.RegularExpressions;

namespace EphemeralCI.JobTokens;

/// <summary>
/// The one glob dialect for job identity, shared by API key bindings, trust policies and secret policies:
/// <c>*</c> matches within one path segment and <c>**</c> across segments (so <c>refs/heads/*</c> does
/// not admit <c>refs/heads/feature/x</c> by accident), <c>?</c> one character of a segment.
/// Repositories compare case-insensitively (forges treat them so), refs, templates and environments
/// case-sensitively.
/// </summary>
public static class IdentityGlob
{
    public const int MaxPatternLength = 256;

    public static bool Matches(string pattern, string? value, bool ignoreCase)
    {
        if (string.IsNullOrEmpty(value)) return false;
        var options = RegexOptions.CultureInvariant | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None);
        return Regex.IsMatch(value, "^" + Body(pattern) + "$", options, TimeSpan.FromMilliseconds(100));
    }

    public static bool MatchesAny(IEnumerable<string> patterns, string? value, bool ignoreCase) =>
        patterns.Any(p => Matches(p, value, ignoreCase));

    /// <summary>
    /// One regular expression matching any of <paramref name="patterns"/>, written in the subset that both
    /// .NET and PostgreSQL's ARE understand (escapes, classes, alternation), so a database can filter rows
    /// with it (EF translates <c>Regex.IsMatch</c> to <c>~</c> on Postgres and REGEXP on SQLite). Case-insensitive
    /// matching is the caller's: compare a lower-cased column with the expression of lower-cased patterns.
    /// </summary>
    public static string ToRegex(IEnumerable<string> patterns) => "^(" + string.Join("|", patterns.Select(Body)) + ")$";

    /// <summary>Null when the pattern is acceptable, else why not.</summary>
    public static string? Validate(string? pattern)
    {
        if (string.IsNullOrWhiteSpace(pattern)) return "must not be empty";
        if (pattern.Length > MaxPatternLength) return $"must be at most {MaxPatternLength} characters";
        if (pattern.Any(char.IsControl) || pattern.Any(char.IsWhiteSpace)) return "must not contain whitespace or control characters";
        return null;
    }

    private static string Body(string pattern) => Regex.Escape(pattern)
        .Replace(@"\*\*", "\u0001", StringComparison.Ordinal)
        .Replace(@"\*", "[^/]*", StringComparison.Ordinal)
        .Replace(@"\?", "[^/]", StringComparison.Ordinal)
        .Replace("\u0001", ".*", StringComparison.Ordinal);
}
