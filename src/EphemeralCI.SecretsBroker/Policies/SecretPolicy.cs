using EphemeralCI.JobTokens;

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
/// <c>refs/tags/v*</c>) and an optional environment, in the dialect of <see cref="IdentityGlob"/>.
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

    public static bool GlobMatches(string pattern, string value, bool ignoreCase) => IdentityGlob.Matches(pattern, value, ignoreCase);

    /// <summary>Null when the pattern is acceptable, else why not.</summary>
    public static string? ValidatePattern(string? pattern) => IdentityGlob.Validate(pattern);
}
