using EphemeralCI.RunnerTemplates;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// The start stage: turns an admitted runner into a running one — resolves its template, has its job
/// token minted (valid until the job's deadline), asks the template's backend to start it (the backend
/// chooses a warm sandbox or a cold start), and hands it to the supervisor. A start that fails finishes the runner
/// FailedToStart and tears down what it made. Called with the job's lock held.
/// </summary>
public sealed class RunnerScheduler(
    ProvisionerDbContext db,
    RunnerTemplateCatalog templates,
    RunnerBackends backends,
    IJobTokenIssuer tokens,
    RunnerSupervisor supervisor,
    RunnerReaper reaper,
    TimeProvider clock,
    ILogger<RunnerScheduler> logger,
    Checkout.CommitGate? commits = null) : IRunnerStarter
{
    public async Task StartAsync(RunnerRequest request, CancellationToken ct)
    {
        // A start cut short (its row is Provisioning, no process of it is supervised): whatever it left
        // on the machine goes first, then it starts as new.
        if (request.Resumed && backends.TryGet(request.Runner.Backend, out var previous))
        {
            var leftover = new RunnerRef(request.Runner.JobId, request.Runner.RunnerId, request.Runner.ProcessId);
            await previous.KillAsync(leftover, ct);
            await previous.DestroyAsync(leftover, ct);
        }
        await ScheduleAsync(request.Runner, request.Job, ct);
    }

    private async Task ScheduleAsync(RunnerRecord runner, RunJob job, CancellationToken ct)
    {
        if (!templates.TryGetLoaded(job.RunnerTemplate, out var loaded))
        {
            await FailToStartAsync(runner, $"unknown runner template '{job.RunnerTemplate}' (known: {string.Join(", ", templates.Names)})", ct);
            return;
        }
        var template = loaded!.Definition;
        if (!backends.TryGet(template.Backend, out var backend))
        {
            await FailToStartAsync(runner, $"runner template '{job.RunnerTemplate}' names backend '{template.Backend}', which this provisioner does not run", ct);
            return;
        }

        runner.Backend = backend.Name;
        // What the runner is made from, for the audit: a later edit of the template changes the hash.
        runner.TemplateHash = loaded.ContentHash;
        runner.TimeoutSeconds = RunnerTemplateCatalog.EffectiveTimeoutSeconds(job.TimeoutSeconds, template);
        // Said once per runner: a resumed start does not say it again.
        await db.AddToOutboxOnceAsync(RunnerMessageIds.Provisioning(runner.RunnerId),
            new JobProvisioning(job.JobId, backend.Name, clock.GetUtcNow(), loaded.ContentHash), clock, sendAgain: false, ct);
        await db.SaveChangesAsync(ct);

        var startedAt = clock.GetUtcNow();
        var deadline = startedAt.AddSeconds(runner.TimeoutSeconds);
        RunnerHandle handle;
        try
        {
            // The secrets broker mints it when JobTokens:Authority and :ProvisionerToken are set (ES256,
            // published JWKS); otherwise the interim shared-key issuer does. A refusal fails the start.
            var token = await tokens.IssueAsync(new JobTokenRequest(job.JobId, job.Repository, job.Ref, deadline, CommitSha: job.CommitSha, Template: runner.Template, Environment: job.Environment, Attempt: runner.Attempt), ct);
            // The commit must be on the claimed ref at the forge before anything of the job exists (Checkout:Enabled).
            if (commits is not null) await commits.VerifyAsync(job, token, ct);
            handle = await backend.StartAsync(new RunnerLaunch(job.JobId, runner.RunnerId, loaded.Name, template, token, deadline), ct);
        }
        catch (Exception ex) when (ex is RunnerStartException or InvalidOperationException or HttpRequestException)
        {
            logger.LogError("Runner for job {JobId} failed to start: {Reason}", job.JobId, ex.Message);
            await FailToStartAsync(runner, ex.Message, ct);
            return;
        }

        // Supervise before recording, so a runner that is already running is never unwatched,
        // even if the database write below fails and the message is redelivered.
        supervisor.Watch(job.JobId, handle, backend, deadline, runner.TimeoutSeconds);
        runner.Start(handle.ProcessId, startedAt, deadline);
        db.AddToOutbox(new RunnerStarted(job.JobId, runner.RunnerId, backend.Name, startedAt, loaded.ContentHash,
            template.Relaxations() is { Count: > 0 } relaxed ? relaxed : null), clock, RunnerMessageIds.Started(runner.RunnerId));
        await db.SaveChangesAsync(CancellationToken.None);
        logger.LogInformation("Runner {RunnerId} for job {JobId} started on {Backend}, deadline {Deadline:O}", runner.RunnerId, job.JobId, backend.Name, deadline);
    }

    private async Task FailToStartAsync(RunnerRecord runner, string reason, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        runner.Finish(RunnerOutcome.FailedToStart, null, reason, now);
        db.AddToOutbox(new RunnerFinished(runner.JobId, runner.RunnerId, RunnerOutcome.FailedToStart, null, reason, now, runner.Attempt), clock, RunnerMessageIds.Finished(runner.RunnerId));
        await db.SaveChangesAsync(ct);
        await reaper.TeardownLockedAsync(runner.JobId, ct);
    }
}
