namespace EphemeralCI.RunnerAgent;

/// <summary>The agent's side of the secret exchange: when to ask, and what to tell the job's log (names only).</summary>
public static class JobSecrets
{
    /// <summary>
    /// Asks the broker for the names the job spec lists. A job that lists none does not ask (and so
    /// never spends its token); a job that lists some but cannot get an answer fails before any step.
    /// </summary>
    public static async Task<(SecretsGrant Grant, string? Failure)> FetchAsync(SecretsClient? broker, IReadOnlyList<string> requested, CancellationToken ct)
    {
        if (requested.Count == 0) return (SecretsGrant.None, null);
        if (broker is null) return (SecretsGrant.None, "the job asks for secrets but this runner has no secrets broker (ECI_SECRETS_SOCKET / ECI_SECRETS_URL unset)");
        try
        {
            return (await broker.ExchangeAsync(requested, ct), null);
        }
        catch (Exception ex) when (ex is HttpRequestException or InvalidOperationException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return (SecretsGrant.None, $"could not fetch the job's secrets: {ex.Message}");
        }
    }

    public static IEnumerable<string> Describe(SecretsGrant grant)
    {
        if (grant.Secrets.Count > 0) yield return $"==> secrets: {string.Join(", ", grant.Secrets.Keys.Order(StringComparer.Ordinal))} (masked in this log)";
        foreach (var (name, reason) in grant.Denied.OrderBy(d => d.Key, StringComparer.Ordinal))
        {
            yield return $"==> secret {name} was not granted: {reason}";
        }
    }
}
