using EphemeralCI.JobTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.SecretsBroker.Identity;

/// <summary>Lets the broker (and an all-in-one process) validate job tokens against its own key ring, without HTTP.</summary>
internal sealed class BrokerKeySource(SigningKeyRing ring) : IJobTokenKeySource
{
    public ValueTask<IReadOnlyList<SecurityKey>> GetKeysAsync(string? kid, CancellationToken cancellationToken = default) =>
        ring.GetValidationKeysAsync(kid, cancellationToken);
}
