using System.Security.Claims;
using System.Text.RegularExpressions;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using EphemeralCI.JobTokens;

namespace EphemeralCI.Intake.Auth;

/// <summary>
/// A job identity vouched for by a verified OIDC token: the submitter may claim exactly these values.
/// </summary>
public sealed record VerifiedJobIdentity(string Repository, string Ref, string CommitSha, string TrustPolicy, string Subject);

/// <summary>Why a submission was refused: the field of the job spec and the reason, for a 403 naming it.</summary>
public sealed record AccessRefusal(string Field, string Detail);

/// <summary>
/// What the caller of the jobs API may claim and see, read from its principal (an API key's bindings, or a
/// trust policy and the verified claims of a federated token). Admin keys may claim and see everything.
/// Repositories decide what the caller sees; refs, templates and environments only what it may submit.
/// </summary>
public sealed record JobAccess(
    bool IsAdmin,
    IReadOnlyList<string> Repositories,
    IReadOnlyList<string> Refs,
    IReadOnlyList<string> Templates,
    IReadOnlyList<string> Environments,
    string SubmittedBy,
    Guid? ApiKeyId,
    VerifiedJobIdentity? Verified)
{
    // Claim types on the principal; one claim per glob.
    public const string RepositoryClaim = "eci_repository";
    public const string RefClaim = "eci_ref";
    public const string TemplateClaim = "eci_template";
    public const string EnvironmentClaim = "eci_environment";
    public const string SubmittedByClaim = "eci_submitted_by";
    public const string VerifiedRepositoryClaim = "eci_verified_repository";
    public const string VerifiedRefClaim = "eci_verified_ref";
    public const string VerifiedShaClaim = "eci_verified_sha";
    public const string TrustPolicyClaim = "eci_trust_policy";

    public static JobAccess From(ClaimsPrincipal user)
    {
        var scopes = user.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(c => c.Value).ToList();
        List<string> All(string type) => user.FindAll(type).Select(c => c.Value).ToList();
        var verified = user.FindFirst(VerifiedRepositoryClaim)?.Value is { } repository
            ? new VerifiedJobIdentity(repository, user.FindFirst(VerifiedRefClaim)!.Value, user.FindFirst(VerifiedShaClaim)!.Value,
                user.FindFirst(TrustPolicyClaim)?.Value ?? "", user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? "")
            : null;
        return new JobAccess(
            IsAdmin: scopes.Contains(ApiKeyScopes.Admin),
            All(RepositoryClaim), All(RefClaim), All(TemplateClaim), All(EnvironmentClaim),
            user.FindFirst(SubmittedByClaim)?.Value ?? "unknown",
            Guid.TryParse(user.FindFirst(ApiKeyAuthenticationHandler.ApiKeyIdClaim)?.Value, out var id) ? id : null,
            verified);
    }

    /// <summary>The claims an API key's bindings become.</summary>
    public static IEnumerable<Claim> ClaimsOf(ApiKey key) =>
        key.Repositories.Select(r => new Claim(RepositoryClaim, r))
            .Concat(key.Refs.Select(r => new Claim(RefClaim, r)))
            .Concat(key.Templates.Select(t => new Claim(TemplateClaim, t)))
            .Concat(key.Environments.Select(e => new Claim(EnvironmentClaim, e)))
            .Append(new Claim(SubmittedByClaim, $"api-key:{key.Id}"));

    /// <summary>True when the caller may see jobs of <paramref name="repository"/>.</summary>
    public bool MaySee(string repository) => IsAdmin || IdentityGlob.MatchesAny(Repositories, repository, ignoreCase: true);

    /// <summary>Only the jobs the caller may see: a database-side filter with the repository globs as one regular expression.</summary>
    public IQueryable<Job> Visible(IQueryable<Job> jobs)
    {
        if (IsAdmin) return jobs;
        if (Repositories.Count == 0) return jobs.Where(j => false);
        // Repositories match case-insensitively: lower-cased on both sides (Npgsql has no inline (?i) after its own prefix).
        var regex = IdentityGlob.ToRegex(Repositories.Select(r => r.ToLowerInvariant()));
        return jobs.Where(j => Regex.IsMatch(j.Repository.ToLower(), regex));
    }

    /// <summary>
    /// A federated submitter's spec with its repository, ref and commit filled in from the verified claims
    /// (a body may leave them out). A value the body names that differs is kept, so <see cref="CheckSubmission"/> refuses it.
    /// </summary>
    public JobSpec WithVerifiedIdentity(JobSpec spec) => Verified is not { } v ? spec : spec with
    {
        Repository = spec.Repository ?? v.Repository,
        Ref = spec.Ref ?? v.Ref,
        CommitSha = spec.CommitSha ?? v.CommitSha,
    };

    /// <summary>Null when the caller may submit <paramref name="spec"/> (already validated), else the first field it may not claim.</summary>
    public AccessRefusal? CheckSubmission(JobSpec spec)
    {
        if (IsAdmin) return null;
        if (Verified is { } v)
        {
            if (!string.Equals(spec.Repository, v.Repository, StringComparison.OrdinalIgnoreCase))
                return new("repository", $"The identity token was issued for repository '{v.Repository}'; the job names '{spec.Repository}'.");
            if (!string.Equals(spec.Ref, v.Ref, StringComparison.Ordinal))
                return new("ref", $"The identity token was issued for ref '{v.Ref}'; the job names '{spec.Ref}'.");
            if (!string.Equals(spec.CommitSha, v.CommitSha, StringComparison.OrdinalIgnoreCase))
                return new("commitSha", $"The identity token was issued for commit '{v.CommitSha}'; the job names '{spec.CommitSha}'.");
        }
        // A federated submitter's globs are its verified repository and ref themselves (its trust policy's
        // globs were checked when the token was admitted), so these checks hold for both kinds.
        if (!IdentityGlob.MatchesAny(Repositories, spec.Repository, ignoreCase: true))
            return new("repository", $"This credential may not submit jobs for repository '{spec.Repository}' (allowed: {List(Repositories)}).");
        if (!IdentityGlob.MatchesAny(Refs, spec.Ref, ignoreCase: false))
            return new("ref", $"This credential may not submit jobs for ref '{spec.Ref}' (allowed: {List(Refs)}).");
        if (Templates.Count > 0 && !IdentityGlob.MatchesAny(Templates, spec.RunnerTemplate, ignoreCase: false))
            return new("runnerTemplate", $"This credential may not use runner template '{spec.RunnerTemplate}' (allowed: {List(Templates)}).");
        if (spec.Environment is { } environment && !IdentityGlob.MatchesAny(Environments, environment, ignoreCase: false))
            return new("environment", Environments.Count == 0
                ? $"This credential may not name an environment; '{environment}' was asked for."
                : $"This credential may not use environment '{environment}' (allowed: {List(Environments)}).");
        return null;
    }

    private static string List(IReadOnlyList<string> patterns) => patterns.Count == 0 ? "none" : string.Join(", ", patterns);
}

public static class JobAccessExtensions
{
    public static JobAccess JobAccess(this ClaimsPrincipal user) => Auth.JobAccess.From(user);
}
