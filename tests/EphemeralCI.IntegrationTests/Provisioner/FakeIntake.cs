using System.Collections.Concurrent;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// Stands in for the intake's runner API (the four routes) on 127.0.0.1, checking job tokens with
/// the real <see cref="JobTokenService"/> and recording every call, so a test can see exactly what
/// the agent inside the sandbox did.
/// </summary>
public sealed class FakeIntake : IAsyncDisposable
{
    private readonly WebApplication _app;
    public ConcurrentDictionary<Guid, FakeJob> Jobs { get; } = new();
    public Uri Address { get; }

    private FakeIntake(WebApplication app)
    {
        _app = app;
        Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public static async Task<FakeIntake> StartAsync(string signingKey)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration["JobTokens:SigningKey"] = signingKey;
        builder.AddJobTokens();
        var app = builder.Build();
        FakeIntake? self = null;

        async Task<FakeJob?> Authenticate(HttpContext ctx, JobTokenService tokens)
        {
            var token = JobTokenAuthenticationHandler.BearerToken(ctx.Request.Headers.Authorization.ToString());
            var claims = token is null ? null : await tokens.ValidateAsync(token);
            var job = claims is null ? null : self!.Jobs.GetValueOrDefault(claims.JobId);
            if (job is not null) job.TokenAttempt = claims!.Attempt;
            return job;
        }

        app.MapGet(RunnerApiRoutes.Job, async (HttpContext ctx, JobTokenService tokens) =>
        {
            if (await Authenticate(ctx, tokens) is not { } job) return Results.Unauthorized();
            Interlocked.Increment(ref job.Fetches);
            return Results.Ok(new RunnerJob(job.JobId, job.Spec));
        });
        app.MapPost(RunnerApiRoutes.Events, async (HttpContext ctx, JobTokenService tokens, RunnerStepEvent evt) =>
        {
            if (await Authenticate(ctx, tokens) is not { } job) return Results.Unauthorized();
            job.Events.Enqueue(evt);
            return Results.NoContent();
        });
        app.MapPost(RunnerApiRoutes.Logs, async (HttpContext ctx, JobTokenService tokens, long offset) =>
        {
            if (await Authenticate(ctx, tokens) is not { } job) return Results.Unauthorized();
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body);
            job.AppendLog(offset, body.ToArray());
            return Results.NoContent();
        });
        app.MapPost(RunnerApiRoutes.Complete, async (HttpContext ctx, JobTokenService tokens, RunnerCompletion completion) =>
        {
            if (await Authenticate(ctx, tokens) is not { } job) return Results.Unauthorized();
            job.Completion.TrySetResult(completion);
            return Results.NoContent();
        });
        await app.StartAsync();
        self = new FakeIntake(app);
        return self;
    }

    public FakeJob Register(Guid jobId, params StepSpec[] steps)
    {
        var job = new FakeJob(jobId, new JobSpec { Name = "test", Repository = "acme/app", Ref = "main", Steps = steps });
        Jobs[jobId] = job;
        return job;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

public sealed class FakeJob(Guid jobId, JobSpec spec)
{
    private readonly MemoryStream _log = new();
    public Guid JobId { get; } = jobId;
    public JobSpec Spec { get; } = spec;
    public int Fetches;
    /// <summary>The attempt named by the job token the agent last called with.</summary>
    public int TokenAttempt;
    public ConcurrentQueue<RunnerStepEvent> Events { get; } = new();
    public TaskCompletionSource<RunnerCompletion> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Like the real intake: a chunk at an offset already stored is a retry and is ignored.</summary>
    public void AppendLog(long offset, byte[] chunk)
    {
        lock (_log)
        {
            if (offset != _log.Length) return;
            _log.Write(chunk);
        }
    }

    public string Log
    {
        get { lock (_log) return System.Text.Encoding.UTF8.GetString(_log.ToArray()); }
    }
}
