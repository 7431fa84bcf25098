using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reconciliation;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// A job whose runner never got a process — the provisioner died mid-start, or a broker or database
/// outage cut the start short — is started, never reported lost and never left to a timeout; and a
/// finished runner asked about again re-announces its end under its first message ids.
/// </summary>
[Collection(ProvisionerCollection.Name)]
public sealed class CutShortStartTests(ProvisionerFixture fx)
{
    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    /// <summary>What a start cut short leaves: the claimed row, Provisioning, no process; and half a sandbox on disk.</summary>
    private async Task ClaimWithoutStartingAsync(Guid jobId)
    {
        await using (var scope = fx.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            db.Runners.Add(new RunnerRecord
            {
                JobId = jobId,
                RunnerId = RunnerRecord.RunnerIdFor(jobId),
                State = RunnerState.Provisioning,
                Backend = "local",
                Template = "default",
                Repository = "acme/app",
                Ref = "main",
                TimeoutSeconds = 120,
                CreatedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }
        var half = Path.Combine(fx.WorkRoot, jobId.ToString(), "workspace");
        Directory.CreateDirectory(half);
        await File.WriteAllTextAsync(Path.Combine(half, "from-the-cut-short-start"), "stale");
    }

    private async Task AssertRanOnceAndSucceededAsync(Guid jobId, FakeJob job)
    {
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runner = (await fx.RunnerAsync(jobId))!;
        Assert.Equal(RunnerOutcome.Exited, runner.Outcome);
        Assert.Equal(0, runner.ExitCode);
        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("ran-once", job.Log);
        Assert.DoesNotContain("from-the-cut-short-start", job.Log);
        Assert.Equal(1, job.Fetches);
        var sent = await fx.SentAsync(jobId);
        Assert.Single(sent.OfType<RunnerStarted>());
        Assert.DoesNotContain(sent.OfType<RunnerFinished>(), f => f.Outcome == RunnerOutcome.Lost);
        Assert.Single(sent.OfType<RunnerFinished>());
        Assert.Empty(SandboxProcesses.Of(jobId));
        Assert.False(Directory.Exists(Path.Combine(fx.WorkRoot, jobId.ToString())));
    }

    [Fact]
    public async Task At_start_up_a_runner_that_never_got_a_process_is_started_not_reported_lost()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "ls /workspace; echo ran-once"));
        await ClaimWithoutStartingAsync(jobId);

        await fx.Host.Services.GetRequiredService<StartupReconciler>().ReconcileAsync(CancellationToken.None);

        await AssertRanOnceAndSucceededAsync(jobId, job);
    }

    [Fact]
    public async Task A_redelivered_RunJob_starts_a_runner_whose_start_was_cut_short()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "ls /workspace; echo ran-once"));
        await ClaimWithoutStartingAsync(jobId);

        // Before: "already has a runner (Provisioning)", ignored, failed 300 s later as stuck.
        await fx.PublishAsync(fx.RunJob(jobId));

        await AssertRanOnceAndSucceededAsync(jobId, job);
    }

    [Fact]
    public async Task A_periodic_pass_queues_again_a_start_cut_short_whose_RunJob_never_comes_back()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "ls /workspace; echo ran-once"));
        await ClaimWithoutStartingAsync(jobId);
        var reconciler = fx.Host.Services.GetRequiredService<StartupReconciler>();

        // Seen once: could be a start about to take the job's lock; left alone.
        await reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);
        Assert.Equal(RunnerState.Provisioning, (await fx.RunnerAsync(jobId))!.State);
        Assert.Equal(0, job.Fetches);

        // Seen so again after the grace period (ReconcilerOptions.RequeueProvisioningAfterSeconds: 10).
        await Task.Delay(TimeSpan.FromSeconds(10.5));
        await reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);

        await AssertRanOnceAndSucceededAsync(jobId, job);
    }

    [Fact]
    public async Task A_redelivered_RunJob_of_a_finished_runner_announces_its_end_again_under_the_first_ids()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "echo ran-once"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runnerId = RunnerRecord.RunnerIdFor(jobId);
        var before = await RowsAsync(jobId);

        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(fx.Consumed<RunJob>(jobId) == 2), "the second RunJob to be consumed");

        var after = await RowsAsync(jobId);
        // No new message: the same rows, under the ids every announcement of this runner's end uses.
        Assert.Equal(before.Select(r => r.MessageId).Order(), after.Select(r => r.MessageId).Order());
        Assert.Contains(after, r => r.MessageId == RunnerMessageIds.Finished(runnerId) && r.MessageType.Contains(nameof(RunnerFinished)));
        Assert.Contains(after, r => r.MessageId == RunnerMessageIds.Destroyed(runnerId) && r.MessageType.Contains(nameof(RunnerDestroyed)));
        Assert.Single(after, r => r.MessageType.Contains(nameof(RunnerFinished)));
        Assert.Single(after, r => r.MessageType.Contains(nameof(RunnerDestroyed)));
        Assert.Equal(1, job.Fetches);
    }

    private async Task<List<OutboxMessage>> RowsAsync(Guid jobId)
    {
        await using var scope = fx.Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var id = jobId.ToString();
        return (await db.OutboxMessages.AsNoTracking().ToListAsync()).Where(r => r.Body.Contains(id)).ToList();
    }
}
