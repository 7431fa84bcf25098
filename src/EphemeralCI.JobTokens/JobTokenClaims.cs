namespace EphemeralCI.JobTokens;

/// <summary>What a valid job token proves: this caller is the runner of exactly this job.</summary>
public sealed record JobTokenClaims(Guid JobId, string Repository, string Ref, string TokenId, DateTimeOffset ExpiresAt)
{
    public const string JobIdClaim = "job_id";
    public const string RepositoryClaim = "repository";
    public const string RefClaim = "ref";
    public const string CommitShaClaim = "sha";
    public const string TemplateClaim = "runner_template";
    public const string EnvironmentClaim = "environment";
    /// <summary>Which attempt of the job the token is for; absent for the first (tokens made before retries read as 1).</summary>
    public const string AttemptClaim = "attempt";

    /// <summary>The commit the job builds, when the issuer knew it (broker tokens only).</summary>
    public string? CommitSha { get; init; }
    /// <summary>The runner template the job runs on (broker tokens only).</summary>
    public string? Template { get; init; }
    /// <summary>The deployment environment the job targets, if any: secrets bound to an environment need it.</summary>
    public string? Environment { get; init; }
    /// <summary>The attempt of the job this token's runner runs (1 unless the job was retried after its runner was lost).</summary>
    public int Attempt { get; init; } = 1;

    /// <summary>Reads the attempt claim: absent means the first attempt; anything unreadable is not an attempt at all (0).</summary>
    public static int ParseAttempt(string? value) => value is null ? 1 : int.TryParse(value, out var n) && n >= 1 ? n : 0;

    /// <summary>The OIDC subject relying parties pin, in GitHub's shape.</summary>
    public static string SubjectOf(string repository, string gitRef) => $"repo:{repository}:ref:{gitRef}";
}
