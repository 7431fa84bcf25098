namespace EphemeralCI.JobTokens;

/// <summary>What a valid job token proves: this caller is the runner of exactly this job.</summary>
public sealed record JobTokenClaims(Guid JobId, string Repository, string Ref, string TokenId, DateTimeOffset ExpiresAt)
{
    public const string JobIdClaim = "job_id";
    public const string RepositoryClaim = "repository";
    public const string RefClaim = "ref";
}
