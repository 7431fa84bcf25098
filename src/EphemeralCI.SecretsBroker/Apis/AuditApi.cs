using Microsoft.Extensions.Hosting;
using System.Text.Json;
using EphemeralCI.Contracts.Admin;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.SecretsBroker.Apis;

public sealed record AuditQuery(
    [property: FromQuery] Guid? JobId,
    [property: FromQuery] string? Secret,
    [property: FromQuery] string? Action,
    [property: FromQuery] DateTimeOffset? Since,
    [property: FromQuery] long? After,
    [property: FromQuery] int? Limit);

public sealed record AuditEntryDto(
    long Id, DateTimeOffset At, string Actor, string Action, string? Secret, Guid? JobId, string? Repository, string? Ref, string? TokenId, string? Detail, int? Attempt = null);

public static class AuditApi
{
    private static readonly JsonSerializerOptions JsonLines = new(JsonSerializerDefaults.Web);

    public static RouteGroupBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/admin/audit")
            .WithTags("Audit")
            .AdminListenerOnly()
            .AddEndpointFilter<AdminTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        api.MapGet("/", QueryAsync).WithName("QueryAudit").WithSummary("Audit lines, oldest first; page with 'after' (the last id seen)");
        api.MapGet("/recent", RecentAsync).WithName("RecentAudit").WithSummary("The newest audit lines, newest first (what the web UI's Secrets page shows)");
        api.MapGet("/export", ExportAsync).WithName("ExportAudit").WithSummary("The matching audit lines as JSON lines (application/x-ndjson)");
        return api;
    }

    public static async Task<Results<Ok<List<AuditEntryDto>>, ValidationProblem>> QueryAsync([AsParameters] AuditQuery query, SecretsDbContext db, CancellationToken ct)
    {
        if (query.Limit is < 1 or > 1000)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["must be between 1 and 1000"] });
        }
        var rows = await Filter(db, query).Take(query.Limit ?? 100).ToListAsync(ct);
        return TypedResults.Ok(rows.Select(ToDto).ToList());
    }

    public static async Task<Results<Ok<IReadOnlyList<SecretAuditLine>>, ValidationProblem>> RecentAsync(int? limit, ISecretsAdminView view, CancellationToken ct)
    {
        if (limit is < 1 or > 1000)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["must be between 1 and 1000"] });
        }
        return TypedResults.Ok(await view.RecentAuditAsync(limit ?? 100, ct));
    }

    /// <summary>Streams every matching line (no limit), one JSON object per line, without loading the table into memory.</summary>
    public static async Task ExportAsync([AsParameters] AuditQuery query, SecretsDbContext db, HttpContext http, CancellationToken ct)
    {
        http.Response.ContentType = "application/x-ndjson";
        await foreach (var row in Filter(db, query).AsAsyncEnumerable().WithCancellation(ct))
        {
            await http.Response.WriteAsync(JsonSerializer.Serialize(ToDto(row), JsonLines) + "\n", ct);
        }
    }

    private static IQueryable<AuditEntry> Filter(SecretsDbContext db, AuditQuery q)
    {
        var rows = db.AuditEntries.AsNoTracking();
        if (q.JobId is { } job) rows = rows.Where(e => e.JobId == job);
        if (!string.IsNullOrEmpty(q.Secret)) rows = rows.Where(e => e.SecretName == q.Secret);
        if (!string.IsNullOrEmpty(q.Action)) rows = rows.Where(e => e.Action == q.Action);
        if (q.Since is { } since) rows = rows.Where(e => e.At >= since);
        if (q.After is { } after) rows = rows.Where(e => e.Id > after);
        return rows.OrderBy(e => e.Id);
    }

    private static AuditEntryDto ToDto(AuditEntry e) => new(e.Id, e.At, e.Actor, e.Action, e.SecretName, e.JobId, e.Repository, e.Ref, e.TokenId, e.Detail, e.Attempt);
}
