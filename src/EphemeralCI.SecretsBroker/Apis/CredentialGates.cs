using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>Guards the admin API with <c>SecretsBroker:AdminToken</c>.</summary>
internal sealed class AdminTokenGate(IOptions<SecretsBrokerOptions> options)
    : StaticCredentialGate(options.Value.AdminToken, $"{SecretsBrokerOptions.Section}:AdminToken", options.Value.AdminTokenSha256)
{
    public const string Actor = "admin";
}

/// <summary>Guards the mint endpoint with <c>SecretsBroker:ProvisionerToken</c>.</summary>
internal sealed class ProvisionerTokenGate(IOptions<SecretsBrokerOptions> options)
    : StaticCredentialGate(options.Value.ProvisionerToken, $"{SecretsBrokerOptions.Section}:ProvisionerToken");

/// <summary>Guards the operator-secret read with <c>SecretsBroker:CacheToken</c>: the cache's credential (forge fetches).</summary>
internal sealed class CacheTokenGate(IOptions<SecretsBrokerOptions> options)
    : StaticCredentialGate(options.Value.CacheToken, $"{SecretsBrokerOptions.Section}:CacheToken")
{
    public const string Actor = "cache";
}

/// <summary>Guards the GitHub App's secrets (<c>ECI_GITHUB_*</c> only) with <c>SecretsBroker:GitHubActionsToken</c>: the GitHub Actions adapter's credential.</summary>
internal sealed class GitHubActionsTokenGate(IOptions<SecretsBrokerOptions> options)
    : StaticCredentialGate(options.Value.GitHubActionsToken, $"{SecretsBrokerOptions.Section}:GitHubActionsToken")
{
    public const string Actor = "github-actions";
    public const string NamePrefix = "ECI_GITHUB_";
}

/// <summary>Guards the attestation signer with <c>SecretsBroker:AttestationToken</c> (the intake's credential).</summary>
internal sealed class AttestationTokenGate(IOptions<SecretsBrokerOptions> options)
    : StaticCredentialGate(options.Value.AttestationToken, $"{SecretsBrokerOptions.Section}:AttestationToken");
