using System.Text;
using EphemeralCI.SecretsBroker.Apis;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Crypto;
using EphemeralCI.SecretsBroker.Policies;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>What an administrator sets: a new value (optional on update) and the policy.</summary>
public sealed record SecretWrite(string? Value, IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, string? Environment);

/// <summary>A job's view: what it asked for, what it got, what it was refused and why.</summary>
public sealed record SecretGrant(IReadOnlyDictionary<string, string> Granted, IReadOnlyDictionary<string, string> Denied);

/// <summary>
/// The secret store: seals values on the way in, opens them only for a job that policy admits, and
/// writes an audit line in the same transaction as every change.
/// </summary>
public sealed class SecretStore(SecretsDbContext db, EnvelopeCipher cipher, TimeProvider clock)
{
    internal static string Context(string name, int version) => $"secret:{name}:v{version}";

    /// <summary>Creates the secret or adds a version / changes its policy. Returns the row and whether it was created.</summary>
    public async Task<(Secret Secret, bool Created)> PutAsync(string name, SecretWrite write, string actor, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var secret = await db.Secrets.FirstOrDefaultAsync(s => s.Name == name, ct);
        var created = secret is null;
        if (secret is null)
        {
            secret = new Secret { Id = Guid.NewGuid(), Name = name, CreatedAt = now, UpdatedAt = now, UpdatedBy = actor };
            db.Secrets.Add(secret);
        }
        var policyChanged = created
            || !secret.RepositoryPatterns.SequenceEqual(write.Repositories)
            || !secret.RefPatterns.SequenceEqual(write.Refs)
            || secret.Environment != write.Environment;
        var policy = $"repositories=[{string.Join(",", write.Repositories)}]; refs=[{string.Join(",", write.Refs)}]; environment={write.Environment ?? "(any)"}";
        secret.RepositoryPatterns = [.. write.Repositories];
        secret.RefPatterns = [.. write.Refs];
        secret.Environment = write.Environment;
        secret.UpdatedAt = now;
        secret.UpdatedBy = actor;

        if (write.Value is not null)
        {
            var version = secret.CurrentVersion + 1;
            var sealedValue = cipher.Seal(Encoding.UTF8.GetBytes(write.Value), Context(name, version));
            db.SecretVersions.Add(new SecretVersion
            {
                SecretId = secret.Id,
                Version = version,
                Ciphertext = sealedValue.Ciphertext,
                WrappedDataKey = sealedValue.WrappedDataKey,
                KeyId = sealedValue.KeyId,
                CreatedAt = now,
                CreatedBy = actor,
            });
            secret.CurrentVersion = version;
            db.Audit(clock, actor, created ? AuditActions.SecretCreated : AuditActions.SecretUpdated, name, detail: $"version={version}");
        }
        if (policyChanged) db.Audit(clock, actor, AuditActions.PolicyChanged, name, detail: policy);
        await db.SaveChangesAsync(ct);
        return (secret, created);
    }

    public async Task<bool> DeleteAsync(string name, string actor, CancellationToken ct)
    {
        var secret = await db.Secrets.FirstOrDefaultAsync(s => s.Name == name, ct);
        if (secret is null) return false;
        db.Secrets.Remove(secret);
        db.Audit(clock, actor, AuditActions.SecretDeleted, name, detail: $"versions={secret.CurrentVersion}");
        await db.SaveChangesAsync(ct);
        return true;
    }

    /// <summary>
    /// The values of the requested secrets that policy admits for this job; every refusal is audited.
    /// Unknown names are refused like forbidden ones (so a job cannot probe which secrets exist).
    /// </summary>
    public async Task<SecretGrant> ResolveAsync(JobTokenIdentity job, IReadOnlyCollection<string> requested, CancellationToken ct)
    {
        var names = requested.Distinct(StringComparer.Ordinal).ToList();
        // One round trip: each secret with its current sealed version (opened only if policy admits).
        var secrets = await db.Secrets.AsNoTracking()
            .Where(s => names.Contains(s.Name))
            .Select(s => new { Secret = s, Current = s.Versions.FirstOrDefault(v => v.Version == s.CurrentVersion) })
            .ToDictionaryAsync(s => s.Secret.Name, ct);
        var granted = new Dictionary<string, string>(StringComparer.Ordinal);
        var denied = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            // Before the lookup, so a job learns nothing about which operator secrets exist.
            if (SecretNames.IsOperatorOnly(name))
            {
                denied[name] = "operator-only";
                continue;
            }
            if (!secrets.TryGetValue(name, out var row) || row.Current is not { } version)
            {
                denied[name] = "not-found";
                continue;
            }
            var secret = row.Secret;
            var decision = SecretPolicy.Evaluate(secret.RepositoryPatterns, secret.RefPatterns, secret.Environment, job.Repository, job.Ref, job.Environment);
            if (decision != PolicyDecision.Allowed)
            {
                denied[name] = decision switch
                {
                    PolicyDecision.RepositoryNotAllowed => "repository-not-allowed",
                    PolicyDecision.RefNotAllowed => "ref-not-allowed",
                    _ => "environment-not-allowed",
                };
                continue;
            }
            var plaintext = cipher.Open(new SealedData(version.Ciphertext, version.WrappedDataKey, version.KeyId), Context(name, version.Version));
            granted[name] = Encoding.UTF8.GetString(plaintext);
        }
        foreach (var (name, reason) in denied)
        {
            db.Audit(clock, job.Actor, AuditActions.ExchangeDenied, name, job.JobId, job.Repository, job.Ref, job.TokenId, reason, job.Attempt);
        }
        if (granted.Count > 0 || denied.Count == 0)
        {
            db.Audit(clock, job.Actor, AuditActions.ExchangeGranted, null, job.JobId, job.Repository, job.Ref, job.TokenId,
                $"secrets=[{string.Join(",", granted.Keys)}]", job.Attempt);
        }
        await db.SaveChangesAsync(ct);
        return new SecretGrant(granted, denied);
    }

    /// <summary>
    /// The current value of an operator-only secret for the control plane (<paramref name="actor"/>, e.g. the cache
    /// fetching from a forge), or null when it does not exist. Every read is audited, found or not.
    /// </summary>
    public async Task<(string Value, int Version)?> ReadOperatorSecretAsync(string name, string actor, CancellationToken ct)
    {
        if (!SecretNames.IsOperatorOnly(name)) throw new ArgumentException($"'{name}' is not an operator-only secret name", nameof(name));
        var row = await db.Secrets.AsNoTracking()
            .Where(s => s.Name == name)
            .Select(s => s.Versions.FirstOrDefault(v => v.Version == s.CurrentVersion))
            .FirstOrDefaultAsync(ct);
        if (row is null)
        {
            db.Audit(clock, actor, AuditActions.OperatorSecretMissing, name);
            await db.SaveChangesAsync(ct);
            return null;
        }
        var plaintext = cipher.Open(new SealedData(row.Ciphertext, row.WrappedDataKey, row.KeyId), Context(name, row.Version));
        db.Audit(clock, actor, AuditActions.OperatorSecretRead, name, detail: $"version={row.Version}");
        await db.SaveChangesAsync(ct);
        return (Encoding.UTF8.GetString(plaintext), row.Version);
    }

    /// <summary>Re-wraps data keys still under an old key-encryption key (values are not re-encrypted). Returns how many.</summary>
    public async Task<(int SecretVersions, int SigningKeys)> RewrapAsync(string activeKeyId, string actor, CancellationToken ct)
    {
        var versions = 0;
        var keys = 0;
        // In batches, so a large store is not loaded at once and a crash midway loses nothing: each batch commits.
        while (true)
        {
            var batch = await db.SecretVersions.Where(v => v.KeyId != activeKeyId).Take(200).ToListAsync(ct);
            if (batch.Count == 0) break;
            foreach (var v in batch)
            {
                var rewrapped = cipher.Rewrap(new SealedData(v.Ciphertext, v.WrappedDataKey, v.KeyId));
                v.WrappedDataKey = rewrapped.WrappedDataKey;
                v.KeyId = rewrapped.KeyId;
            }
            versions += batch.Count;
            await db.SaveChangesAsync(ct);
        }
        foreach (var k in await db.SigningKeys.Where(k => k.KeyId != activeKeyId).ToListAsync(ct))
        {
            var rewrapped = cipher.Rewrap(new SealedData(k.PrivateKeyCiphertext, k.WrappedDataKey, k.KeyId));
            k.WrappedDataKey = rewrapped.WrappedDataKey;
            k.KeyId = rewrapped.KeyId;
            keys++;
        }
        db.Audit(clock, actor, AuditActions.KeysRewrapped, detail: $"active={activeKeyId}; secretVersions={versions}; signingKeys={keys}");
        await db.SaveChangesAsync(ct);
        return (versions, keys);
    }
}

/// <summary>The job as its validated token describes it, for policy checks and audit lines.</summary>
public sealed record JobTokenIdentity(Guid JobId, string Repository, string Ref, string? Environment, string TokenId, int Attempt = 1)
{
    public string Actor => $"job:{JobId}";
}
