using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>What the intake asks the provisioner again when it starts on a database with history.</summary>
public sealed class JobRedriveTests
{
    /// <summary>A second intake process on the first one's database (a restart).</summary>
    private sealed class RestartedIntakeFactory(string database) : IntakeFactory
    {
        public override Task InitializeAsync()
        {
            DatabaseConnectionString = database;
            _ = Services;
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task A_cancelled_job_whose_runner_was_never_reported_gone_gets_its_CancelJob_again_at_start_up()
    {
        // Kept until the end: MassTransit's log context outlives a disposed host in this process.
        // Two intakes on one database at once is harmless here (the first one's start-up is over).
        await using var first = new IntakeFactory();
        await first.InitializeAsync();
        using var client = await first.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var unconfirmed = await Jobs.SubmitAsync(client);
        var confirmed = await Jobs.SubmitAsync(client);
        var running = await Jobs.SubmitAsync(client);
        foreach (var id in new[] { unconfirmed, confirmed })
        {
            using var cancel = await client.PostAsync($"/api/v1/jobs/{id}/cancel", null);
            cancel.EnsureSuccessStatusCode();
        }
        // The provisioner reported one runner gone; the other report (or the CancelJob itself) was lost.
        await first.Services.GetRequiredService<IBus>().Publish(new RunnerDestroyed(confirmed, "runner-x", DateTimeOffset.UtcNow));
        await IntakeFactory.EventuallyAsync(async () => await first.CountEventsAsync(confirmed, JobEventTypes.RunnerDestroyed) == 1, "the runner.destroyed event");

        await using var restarted = new RestartedIntakeFactory(first.DatabaseConnectionString);
        await restarted.InitializeAsync();

        var sent = await restarted.WithDbAsync(db => db.OutboxMessages.AsNoTracking().ToListAsync());
        int Count<T>(Guid id, Func<T, Guid> jobOf) => sent
            .Where(m => m.MessageType.Contains(typeof(T).Name, StringComparison.Ordinal))
            .Count(m => jobOf(JsonSerializer.Deserialize<T>(m.Body, JsonSerializerOptions.Web)!) == id);
        Assert.Equal(2, Count<CancelJob>(unconfirmed, m => m.JobId));
        Assert.Equal(1, Count<CancelJob>(confirmed, m => m.JobId));
        Assert.Equal(0, Count<CancelJob>(running, m => m.JobId));
        Assert.Equal(2, Count<RunJob>(running, m => m.JobId)); // not over: asked again as before
        Assert.Equal(1, Count<RunJob>(unconfirmed, m => m.JobId)); // cancelled: never run again
    }

    [Fact]
    public async Task A_finished_job_whose_RunnerDestroyed_was_lost_is_asked_about_at_start_up_and_one_finished_long_ago_is_not()
    {
        await using var first = new IntakeFactory();
        await first.InitializeAsync();
        using var client = await first.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var lost = await Jobs.SubmitAsync(client);
        var reported = await Jobs.SubmitAsync(client);
        var longAgo = await Jobs.SubmitAsync(client);
        var bus = first.Services.GetRequiredService<IBus>();
        foreach (var id in new[] { lost, reported, longAgo })
        {
            await bus.Publish(new RunnerFinished(id, $"runner-{id}", RunnerOutcome.Lost, null, "killed", DateTimeOffset.UtcNow));
        }
        // Only one runner's destruction reached the intake; the server died with the others' RunnerDestroyed still queued in memory.
        await bus.Publish(new RunnerDestroyed(reported, $"runner-{reported}", DateTimeOffset.UtcNow));
        await IntakeFactory.EventuallyAsync(async () => await first.CountEventsAsync(reported, JobEventTypes.RunnerDestroyed) == 1
            && await first.WithDbAsync(db => db.Jobs.CountAsync(j => (j.Id == lost || j.Id == longAgo) && j.Status == JobStatus.Failed)) == 2,
            "the jobs over");
        var dayAndMore = DateTimeOffset.UtcNow - JobRedrive.RecentlyFinished - TimeSpan.FromHours(1);
        await first.WithDbAsync(async db =>
        {
            var job = await db.Jobs.SingleAsync(j => j.Id == longAgo);
            db.Entry(job).Property(j => j.FinishedAt).CurrentValue = dayAndMore;
            return await db.SaveChangesAsync();
        });

        await using var restarted = new RestartedIntakeFactory(first.DatabaseConnectionString);
        await restarted.InitializeAsync();

        var cancels = (await restarted.WithDbAsync(db => db.OutboxMessages.AsNoTracking().ToListAsync()))
            .Where(m => m.MessageType.Contains(nameof(CancelJob), StringComparison.Ordinal))
            .Select(m => JsonSerializer.Deserialize<CancelJob>(m.Body, JsonSerializerOptions.Web)!.JobId)
            .ToList();
        Assert.Equal([lost], cancels);
        var runJobs = (await restarted.WithDbAsync(db => db.OutboxMessages.AsNoTracking().ToListAsync()))
            .Count(m => m.MessageType.Contains(nameof(RunJob), StringComparison.Ordinal));
        Assert.Equal(3, runJobs); // the submissions' own: a job over is never run again
    }

    [Fact]
    public async Task While_another_replica_re_drives_a_starting_intake_leaves_the_open_jobs_to_it()
    {
        await using var first = new IntakeFactory();
        await first.InitializeAsync();
        using var client = await first.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var open = await Jobs.SubmitAsync(client);
        await IntakeFactory.EventuallyAsync(() => first.WithDbAsync(db => db.OutboxMessages.AllAsync(m => m.SentAt != null)), "the submission's RunJob sent");
        async Task<int> RunJobsAsync(IntakeFactory intake) => (await intake.WithDbAsync(db => db.OutboxMessages.AsNoTracking().ToListAsync()))
            .Where(m => m.MessageType.Contains(nameof(RunJob), StringComparison.Ordinal))
            .Count(m => JsonSerializer.Deserialize<RunJob>(m.Body, JsonSerializerOptions.Web)!.JobId == open);

        // Another replica is re-driving right now: it holds the advisory lock for its transaction.
        await using var other = new NpgsqlConnection(first.DatabaseConnectionString);
        await other.OpenAsync();
        await using (var tx = await other.BeginTransactionAsync())
        {
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({JobRedrive.LockKey})", other, tx)) await take.ExecuteScalarAsync();
            await using var second = new RestartedIntakeFactory(first.DatabaseConnectionString);
            await second.InitializeAsync();
            Assert.Equal(1, await RunJobsAsync(second)); // the submission's only
            await tx.RollbackAsync();
        }

        // The lock is free: the next replica to start asks again, once.
        await using var third = new RestartedIntakeFactory(first.DatabaseConnectionString);
        await third.InitializeAsync();
        Assert.Equal(2, await RunJobsAsync(third));
    }
}
