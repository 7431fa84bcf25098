namespace EphemeralCI.Intake.Auth.Federation;

/// <summary>
/// An operator's decision to trust one CI system's OIDC tokens (<c>Intake:TrustPolicies</c>, a list): whose
/// tokens (issuer, audience), how their claims become a job's repository, ref and commit, which further claims
/// must hold, and what jobs admitted this way may claim. See docs/security.md, "Trust policies".
/// </summary>
public sealed class TrustPolicy
{
    /// <summary>Names the policy in logs and in a job's <c>submittedBy</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>The token's <c>iss</c>, exactly (<c>https://token.actions.githubusercontent.com</c>, <c>https://gitlab.com</c>).</summary>
    public string Issuer { get; set; } = "";

    /// <summary>Where discovery is read; default <c>{Issuer}/.well-known/openid-configuration</c>. HTTPS unless on loopback.</summary>
    public string? MetadataAddress { get; set; }

    /// <summary>The <c>aud</c> the token must carry: the value the CI job asked its issuer for (e.g. the server's URL).</summary>
    public string Audience { get; set; } = "";

    /// <summary><c>github</c>, <c>gitlab</c> or <c>custom</c>: how claims map to repository, ref and commit.</summary>
    public string Claims { get; set; } = TrustPolicyClaimMap.GitHub;

    /// <summary>With <see cref="Claims"/> <c>custom</c> (or to override a preset): the claim holding <c>owner/name</c>.</summary>
    public string? RepositoryClaim { get; set; }
    /// <summary>The claim holding the ref: a full ref (<c>refs/heads/main</c>), or a short name when <see cref="RefTypeClaim"/> is set.</summary>
    public string? RefClaim { get; set; }
    /// <summary>A claim saying <c>branch</c> or <c>tag</c>, which turns a short <see cref="RefClaim"/> into <c>refs/heads/…</c> or <c>refs/tags/…</c> (GitLab).</summary>
    public string? RefTypeClaim { get; set; }
    /// <summary>The claim holding the commit SHA.</summary>
    public string? CommitShaClaim { get; set; }

    /// <summary>Further claims that must hold: claim name → globs, one of which its value must match (e.g. <c>repository_owner: [acme]</c>, <c>ref_protected: ["true"]</c>).</summary>
    public Dictionary<string, string[]> Conditions { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Repository globs the policy admits (required: an issuer such as GitHub's serves every repository on it).</summary>
    public List<string> Repositories { get; set; } = [];
    /// <summary>Ref globs the policy admits; empty: every ref.</summary>
    public List<string> Refs { get; set; } = [];
    /// <summary>Runner templates its jobs may use; empty: any.</summary>
    public List<string> Templates { get; set; } = [];
    /// <summary>Environments its jobs may name; empty: none.</summary>
    public List<string> Environments { get; set; } = [];

    /// <summary>Why the policy cannot be used, or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrWhiteSpace(Name)) return "Name is required";
        if (!Uri.TryCreate(Issuer, UriKind.Absolute, out var issuer) || issuer.Scheme is not ("https" or "http")) return "Issuer must be an absolute https URL";
        if (!TrustPolicyClaimMap.AllowsTransport(issuer)) return "Issuer must use https (http only on loopback)";
        if (MetadataAddress is not null && (!Uri.TryCreate(MetadataAddress, UriKind.Absolute, out var metadata) || !TrustPolicyClaimMap.AllowsTransport(metadata)))
            return "MetadataAddress must be an absolute https URL (http only on loopback)";
        if (string.IsNullOrWhiteSpace(Audience)) return "Audience is required";
        if (Repositories.Count == 0) return "Repositories must list at least one glob (there is no implicit 'every repository')";
        if (Repositories.Concat(Refs).Concat(Templates).Concat(Environments).Concat(Conditions.Values.SelectMany(v => v))
                .FirstOrDefault(p => JobTokens.IdentityGlob.Validate(p) is not null) is { } bad)
            return $"pattern '{bad}' {JobTokens.IdentityGlob.Validate(bad)}";
        return TrustPolicyClaimMap.For(this).Problem;
    }
}

/// <summary>Which claims carry a job's repository, ref and commit, by preset or by name.</summary>
public sealed record TrustPolicyClaimMap(string RepositoryClaim, string RefClaim, string? RefTypeClaim, string CommitShaClaim, string? Problem = null)
{
    public const string GitHub = "github";
    public const string GitLab = "gitlab";
    public const string Custom = "custom";

    public static TrustPolicyClaimMap For(TrustPolicy p)
    {
        var preset = p.Claims?.Trim().ToLowerInvariant() switch
        {
            GitHub => new TrustPolicyClaimMap("repository", "ref", null, "sha"),
            GitLab => new TrustPolicyClaimMap("project_path", "ref", "ref_type", "sha"),
            Custom => new TrustPolicyClaimMap("", "", null, ""),
            _ => null,
        };
        if (preset is null) return new("", "", null, "", $"Claims must be {GitHub}, {GitLab} or {Custom}");
        var map = new TrustPolicyClaimMap(
            p.RepositoryClaim ?? preset.RepositoryClaim, p.RefClaim ?? preset.RefClaim, p.RefTypeClaim ?? preset.RefTypeClaim, p.CommitShaClaim ?? preset.CommitShaClaim);
        return string.IsNullOrEmpty(map.RepositoryClaim) || string.IsNullOrEmpty(map.RefClaim) || string.IsNullOrEmpty(map.CommitShaClaim)
            ? map with { Problem = "RepositoryClaim, RefClaim and CommitShaClaim are required with Claims: custom" }
            : map;
    }

    /// <summary>https everywhere; http only to this machine (a test issuer, a sidecar), where nobody can sit in between.</summary>
    public static bool AllowsTransport(Uri uri) => uri.Scheme == "https" || (uri.Scheme == "http" && uri.IsLoopback);
}
