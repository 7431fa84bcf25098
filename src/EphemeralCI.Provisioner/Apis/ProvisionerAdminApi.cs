using EphemeralCI.JobTokens;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Provisioner.Apis;

/// <summary>Configuration section <c>Provisioner</c>: the operators' credential for this instance's admin API.</summary>
public sealed class ProvisionerAdminOptions
{
    public const string Section = "Provisioner";
    /// <summary>Bearer token of <c>/provisioner/admin</c>; empty (and no hash) disables it.</summary>
    public string AdminToken { get; set; } = "";
    /// <summary>The token's SHA-256 (hex) instead of the token itself.</summary>
    public string? AdminTokenSha256 { get; set; }
}

/// <summary>Operators: drain this instance (start no new runner, let the running ones finish) and resume it. Guarded by <c>Provisioner:AdminToken</c>.</summary>
public static class ProvisionerAdminApi
{
    public static RouteGroupBuilder MapProvisionerAdminApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/provisioner/admin")
            .WithTags("ProvisionerAdmin")
            .AdminListenerOnly()
            .AddEndpointFilter<ProvisionerAdminTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapGet("/status", (ProvisionerDrain drain, CancellationToken ct) => StatusAsync(drain, ct))
            .WithName("GetProvisionerStatus")
            .WithSummary("Whether this instance drains, its runners alive and the jobs waiting");
        api.MapPost("/drain", async Task<Ok<ProvisionerStatus>> (ProvisionerDrain drain, CancellationToken ct) => TypedResults.Ok(await drain.DrainAsync(ct)))
            .WithName("DrainProvisioner")
            .WithSummary("Start no new runner here (jobs wait for any instance); running ones finish");
        api.MapPost("/resume", async Task<Ok<ProvisionerStatus>> (ProvisionerDrain drain, CancellationToken ct) => TypedResults.Ok(await drain.ResumeAsync(ct)))
            .WithName("ResumeProvisioner")
            .WithSummary("Start runners again, beginning with the jobs that wait");
        return api;
    }

    private static async Task<Ok<ProvisionerStatus>> StatusAsync(ProvisionerDrain drain, CancellationToken ct) => TypedResults.Ok(await drain.StatusAsync(ct));
}

internal sealed class ProvisionerAdminTokenGate(IOptions<ProvisionerAdminOptions> options)
    : StaticCredentialGate(options.Value.AdminToken, $"{ProvisionerAdminOptions.Section}:AdminToken", options.Value.AdminTokenSha256);
