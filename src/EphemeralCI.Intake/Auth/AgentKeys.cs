using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Apis;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Intake.Auth;

/// <summary>
/// The runner API's second factor: the job token says which job, the agent key says "the agent that
/// fetched it". The first fetch binds the key's hash to the job (before any step ran); a report without
/// that key — job code holding a stolen token, a second agent — is refused. A bound hash never changes
/// within an attempt (a job retried after a lost runner binds its new agent anew), so each replica keeps
/// the ones it has read per job and attempt.
/// </summary>
public sealed class AgentKeys : IDisposable
{
    private readonly MemoryCache _bound = new(new MemoryCacheOptions { SizeLimit = 100_000 });

    /// <summary>SHA-256 (hex) of the request's agent key, or null when it has none or a malformed one.</summary>
    public static string? HashOf(HttpRequest request)
    {
        var key = request.Headers[RunnerApiHeaders.AgentKey].ToString();
        // The agent sends 32 random bytes as base64 (44 characters); anything short is not a key.
        if (key.Length is < 32 or > 128) return null;
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }

    /// <summary>The hash bound to the job's <paramref name="attempt"/>, or null when no agent of that attempt has fetched it (or it is not the job's attempt).</summary>
    public async Task<string?> BoundHashAsync(Guid jobId, int attempt, IntakeDbContext db, CancellationToken ct)
    {
        if (_bound.TryGetValue((jobId, attempt), out string? hash)) return hash;
        var job = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.AgentKeyHash, j.Attempt }).FirstOrDefaultAsync(ct);
        if (job is null || job.Attempt != attempt) return null;
        hash = job.AgentKeyHash;
        if (hash is not null) _bound.Set((jobId, attempt), hash, new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(30) });
        return hash;
    }

    public static bool Matches(string? bound, string presented) =>
        bound is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(bound), Encoding.ASCII.GetBytes(presented));

    public void Dispose() => _bound.Dispose();

    /// <summary>Endpoint filter for every runner route except the fetch that binds the key.</summary>
    public static async ValueTask<object?> RequireBoundKey(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var jobId = http.User.JobId();
        var presented = HashOf(http.Request);
        if (jobId is null || presented is null) return Problems.NotTheAgent();
        var keys = http.RequestServices.GetRequiredService<AgentKeys>();
        var db = http.RequestServices.GetRequiredService<IntakeDbContext>();
        var bound = await keys.BoundHashAsync(jobId.Value, http.User.JobAttempt(), db, http.RequestAborted);
        if (bound is null)
        {
            return Problems.Conflict("The job has not been fetched", "The agent fetches its job first; that fetch binds its key.");
        }
        return Matches(bound, presented) ? await next(context) : Problems.NotTheAgent();
    }
}
