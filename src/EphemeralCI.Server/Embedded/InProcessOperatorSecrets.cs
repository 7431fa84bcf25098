using EphemeralCI.Cache.Git;
using EphemeralCI.SecretsBroker.Infrastructure;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// The all-in-one server's cache reads operator-only secrets (<c>Checkout:TokenSecret</c>) from the broker in the
/// same process: the same store, the same audit line (actor <c>cache</c>), no HTTP and no credential to configure.
/// </summary>
internal sealed class InProcessOperatorSecrets(IServiceScopeFactory scopes) : IOperatorSecrets
{
    public async Task<string?> ReadAsync(string name, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var secret = await scope.ServiceProvider.GetRequiredService<SecretStore>().ReadOperatorSecretAsync(name, "cache", ct);
        return secret?.Value;
    }
}
