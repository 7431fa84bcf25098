using System.Text;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Git;

/// <summary>A forge token (GitHub/GitLab style: HTTP basic with the token as password), used only by the control plane's fetches.</summary>
public sealed class ForgeCredential(string token)
{
    /// <summary>Environment-only git config (never argv, never the mirror's config file) that authenticates one fetch.</summary>
    public IEnumerable<KeyValuePair<string, string>> GitConfig()
    {
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + token));
        yield return new("http.extraHeader", "Authorization: Basic " + basic);
    }

    /// <summary>The text with the token (and its basic-auth form) replaced, for a log or a job's timeline.</summary>
    public string Redact(string text)
    {
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + token));
        return text.Replace(token, "***", StringComparison.Ordinal).Replace(basic, "***", StringComparison.Ordinal);
    }

    public override string ToString() => "ForgeCredential(***)";
}

/// <summary>Where the control plane's forge credentials come from.</summary>
public interface IForgeCredentials
{
    Task<ForgeCredential?> GetAsync(string repository, string url, CancellationToken ct);
}

/// <summary>
/// Forge tokens from configuration: <c>Checkout:Repositories:{n}:Token</c> for the first entry matching the repository,
/// else <c>Checkout:Token</c>; none for public repositories. Give them from the host's secret store (environment,
/// Kubernetes secret): they are operator-only and never reach a runner. (Reading them from the secrets broker under an
/// operator-only name is not built yet; see docs/job-file.md.)
/// </summary>
public sealed class ConfiguredForgeCredentials(IOptionsMonitor<CheckoutOptions> options) : IForgeCredentials
{
    public Task<ForgeCredential?> GetAsync(string repository, string url, CancellationToken ct)
    {
        var o = options.CurrentValue;
        var token = o.Repositories.FirstOrDefault(r => IdentityGlob.Matches(r.Match, repository, ignoreCase: true) && !string.IsNullOrEmpty(r.Token))?.Token ?? o.Token;
        return Task.FromResult(string.IsNullOrEmpty(token) ? null : new ForgeCredential(token));
    }
}
