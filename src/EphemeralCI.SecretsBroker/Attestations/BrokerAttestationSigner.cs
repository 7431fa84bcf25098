using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EphemeralCI.Attestations;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Identity;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.SecretsBroker.Attestations;

/// <summary>
/// Signs job statements with the key that signs job tokens now (its kid in the envelope, its public
/// half in the JWKS). Before signing it writes what only the broker knows into the predicate: the
/// secrets it issued to the job (names and the versions current at the exchange, never values) and
/// when the job's token was revoked. It signs only statements of the EphemeralCI job predicate, about
/// the job named, so the endpoint is no general-purpose signer; DSSE's pre-authentication encoding
/// keeps such a signature from ever passing for a job token.
/// </summary>
public sealed partial class BrokerAttestationSigner(IServiceScopeFactory scopes, SigningKeyRing keys) : IAttestationSigner
{
    public async Task<DsseEnvelope> SignAsync(AttestationRequest request, CancellationToken ct)
    {
        var statement = request.Statement;
        if (Problem(statement, request.JobId) is { } problem) throw new AttestationRequestException(problem);
        statement["predicate"]!["secrets"] = JsonSerializer.SerializeToNode(await IssuedSecretsAsync(request.JobId, ct), AttestationFormat.Json);

        var payload = JsonSerializer.SerializeToUtf8Bytes(statement, AttestationFormat.Json);
        var (kid, key) = await keys.GetSignerAsync(ct);
        var ecdsa = ((ECDsaSecurityKey)key).ECDsa;
        return Dsse.Sign(AttestationFormat.PayloadType, payload, ecdsa, kid);
    }

    /// <summary>Why the statement is not one this broker signs, or null.</summary>
    public static string? Problem(JsonObject statement, Guid jobId)
    {
        if (statement["_type"]?.GetValueKind() != JsonValueKind.String || (string?)statement["_type"] != AttestationFormat.StatementType)
        {
            return $"statement._type must be '{AttestationFormat.StatementType}'";
        }
        if (statement["predicateType"]?.GetValueKind() != JsonValueKind.String || (string?)statement["predicateType"] != AttestationFormat.PredicateType)
        {
            return $"statement.predicateType must be '{AttestationFormat.PredicateType}'";
        }
        if (statement["predicate"] is not JsonObject predicate) return "statement.predicate must be an object";
        var invocation = predicate["runDetails"]?["metadata"]?["invocationId"];
        if (invocation?.GetValueKind() != JsonValueKind.String || (string?)invocation != jobId.ToString())
        {
            return "statement.predicate.runDetails.metadata.invocationId must be the job id";
        }
        return null;
    }

    private async Task<List<IssuedSecret>> IssuedSecretsAsync(Guid jobId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
        var lines = await db.AuditEntries.AsNoTracking()
            .Where(e => e.JobId == jobId && (e.Action == AuditActions.ExchangeGranted || e.Action == AuditActions.TokenRevoked))
            .OrderBy(e => e.Id)
            .ToListAsync(ct);
        var issued = new List<IssuedSecret>();
        foreach (var grant in lines.Where(e => e.Action == AuditActions.ExchangeGranted))
        {
            // The revocation that ended this grant's token: its attempt's (a retried job has one per attempt; lines
            // written before attempts were recorded have none and were first attempts).
            var revokedAt = lines.FirstOrDefault(e => e.Action == AuditActions.TokenRevoked && (e.Attempt ?? 1) == (grant.Attempt ?? 1))?.At;
            foreach (var name in GrantedNames(grant.Detail))
            {
                // The audit line names the secrets; their version is the one current at the exchange
                // (versions are immutable and dated). A secret deleted since has none to tell.
                var version = await db.SecretVersions.AsNoTracking()
                    .Where(v => db.Secrets.Any(s => s.Id == v.SecretId && s.Name == name) && v.CreatedAt <= grant.At)
                    .OrderByDescending(v => v.Version)
                    .Select(v => (int?)v.Version)
                    .FirstOrDefaultAsync(ct);
                issued.Add(new IssuedSecret(name, version, grant.At, revokedAt));
            }
        }
        return issued;
    }

    /// <summary>The names in an exchange.granted line's detail, <c>secrets=[A,B]</c>.</summary>
    public static IReadOnlyList<string> GrantedNames(string? detail) =>
        detail is not null && GrantedPattern().Match(detail) is { Success: true } m
            ? m.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];

    [GeneratedRegex(@"^secrets=\[(.*)\]$")]
    private static partial Regex GrantedPattern();
}

/// <summary>The statement is not one the broker signs; the reason names the field.</summary>
public sealed class AttestationRequestException(string message) : Exception(message);
