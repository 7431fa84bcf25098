using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reconciliation;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>The reconciler's periodic pass on real Postgres, bubblewrap and cgroups.</summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ReconcilerTests(ProvisionerFixture fx)
{
    private StartupReconciler Reconciler => fx.Host.Services.GetRequiredService<StartupReconciler>();

    [Fact]
    public async Task A_running_runner_nobody_supervises_is_reported_lost_and_torn_down()
    {
        var jobId = Guid.NewGuid();
        await using (var scope = fx.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            db.Runners.Add(new RunnerRecord
            {
                JobId = jobId,
                RunnerId = RunnerRecord.RunnerIdFor(jobId),
                State = RunnerState.Running,
                Backend = "local",
                Template = "default",
                ProcessId = int.MaxValue,
                CreatedAt = DateTimeOffset.UtcNow,
                StartedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        await Reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);

        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerState.Destroyed, runner!.State);
        Assert.Equal(RunnerOutcome.Lost, runner.Outcome);
        Assert.Equal(StartupReconciler.UnsupervisedReason, runner.Reason);
    }

    [Fact]
    public async Task A_runner_whose_job_is_being_changed_is_decided_by_whoever_holds_its_lock_not_by_the_pass()
    {
        // The scheduler records Running and starts watching under the job's lock; a pass that read the
        // row before must not judge it in between. Here the lock is held over a Running row nobody
        // watches yet: the pass leaves it; once the lock is free, the next pass decides on the row as it is.
        var jobId = Guid.NewGuid();
        await using (var scope = fx.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            db.Runners.Add(new RunnerRecord
            {
                JobId = jobId, RunnerId = RunnerRecord.RunnerIdFor(jobId), State = RunnerState.Running, Backend = "local",
                Template = "default", ProcessId = int.MaxValue, CreatedAt = DateTimeOffset.UtcNow, StartedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        using (await fx.Host.Services.GetRequiredService<JobLocks>().AcquireAsync(jobId))
        {
            await Reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);
            Assert.Equal(RunnerState.Running, (await fx.RunnerAsync(jobId))!.State);
        }

        await Reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);
        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerState.Destroyed, runner!.State);
        Assert.Equal(StartupReconciler.UnsupervisedReason, runner.Reason);
    }

    [Fact]
    public async Task Leftovers_of_an_unknown_job_are_removed_and_a_running_job_is_left_alone()
    {
        // A running job: the pass must not touch it.
        var liveId = Guid.NewGuid();
        var live = fx.Intake.Register(liveId, new StepSpec { Name = "hold", Run = "while [ ! -f /workspace/go ]; do sleep 0.05; done" });
        await fx.PublishAsync(fx.RunJob(liveId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(live.Events.Any(e => e.Type == JobEventTypes.StepStarted)), "the job to run");

        // An unknown job's cgroup and directory, as a crash between creating and recording would leave.
        var unknownId = Guid.NewGuid();
        fx.Sandbox.JobCgroups.Create(unknownId, new RunnerResources());
        Directory.CreateDirectory(Path.Combine(fx.WorkRoot, unknownId.ToString(), "workspace"));

        await Reconciler.ReconcilePeriodicallyAsync(CancellationToken.None);

        HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, unknownId, null);
        Assert.Equal(RunnerState.Running, (await fx.RunnerAsync(liveId))!.State);
        Assert.True(fx.Sandbox.JobCgroups.Exists(liveId));
        await File.WriteAllTextAsync(Path.Combine(fx.WorkRoot, liveId.ToString(), "workspace", "go"), "");
        await fx.WaitForStateAsync(liveId, RunnerState.Destroyed);
        Assert.True((await live.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, live.Log);
        HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, liveId, null);
    }
}
