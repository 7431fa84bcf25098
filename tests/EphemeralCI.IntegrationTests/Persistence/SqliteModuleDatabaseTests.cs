using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace EphemeralCI.IntegrationTests.Persistence;

/// <summary>
/// The embedded server's databases: each module's model on real SQLite files through the same
/// registration the server uses, migrated by the server's SQLite migrations.
/// </summary>
public sealed class SqliteModuleDatabaseTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "eci-sqlite-" + Guid.NewGuid().ToString("N")[..8]);
    private IHost _host = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(new EmbeddedDatabases(_directory, "EphemeralCI.Server"));
        builder.AddModuleDbContext<IntakeDbContext>("intakedb", o => o.UseSnakeCaseNamingConvention());
        builder.AddModuleDbContext<ProvisionerDbContext>("provisionerdb");
        builder.AddModuleDbContext<SecretsDbContext>("secretsdb", o => o.UseSnakeCaseNamingConvention());
        builder.AddModuleDbContext<CacheDbContext>("cachedb", o => o.UseSnakeCaseNamingConvention());
        builder.AddModuleDbContext<GitHubActionsDbContext>("githubactionsdb", o => o.UseSnakeCaseNamingConvention());
        _host = builder.Build();
        await using var scope = _host.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<IntakeDbContext>().Database.MigrateAsync();
        await scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>().Database.MigrateAsync();
        await scope.ServiceProvider.GetRequiredService<SecretsDbContext>().Database.MigrateAsync();
        await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Database.MigrateAsync();
        await scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>().Database.MigrateAsync();
    }

    public Task DisposeAsync()
    {
        _host.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private T Db<T>(AsyncServiceScope scope) where T : DbContext => scope.ServiceProvider.GetRequiredService<T>();

    [Fact]
    public async Task Every_module_has_one_sqlite_file_and_its_sqlite_migrations_match_its_model()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        // A module model change without `dotnet ef migrations add` for SQLite fails here.
        Assert.False(Db<IntakeDbContext>(scope).Database.HasPendingModelChanges(), "intake: SQLite migrations are behind the model");
        Assert.False(Db<ProvisionerDbContext>(scope).Database.HasPendingModelChanges(), "provisioner: SQLite migrations are behind the model");
        Assert.False(Db<SecretsDbContext>(scope).Database.HasPendingModelChanges(), "secrets broker: SQLite migrations are behind the model");
        Assert.False(Db<CacheDbContext>(scope).Database.HasPendingModelChanges(), "cache: SQLite migrations are behind the model");
        Assert.False(Db<GitHubActionsDbContext>(scope).Database.HasPendingModelChanges(), "GitHub Actions: SQLite migrations are behind the model");
        foreach (var file in new[] { "intakedb.db", "provisionerdb.db", "secretsdb.db", "cachedb.db", "githubactionsdb.db" })
        {
            Assert.True(File.Exists(Path.Combine(_directory, file)), $"{file} is missing");
        }
    }

    [Fact]
    public async Task Cache_restore_lookups_and_access_touches_work_on_sqlite()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var db = Db<CacheDbContext>(scope);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = Microsoft.Extensions.Options.Options.Create(new EphemeralCI.Cache.CacheOptions { SpoolDirectory = Path.Combine(_directory, "spool") });
        var blobs = new EphemeralCI.Cache.Storage.FileSystemBlobStore(Path.Combine(_directory, "objects"));
        var entries = new EphemeralCI.Cache.Entries.CacheEntryService(db, new EphemeralCI.Cache.Entries.InProcessCacheReservations(clock),
            new EphemeralCI.Cache.Entries.InProcessCacheLookups(options, clock), blobs,
            new EphemeralCI.Cache.Entries.UploadStaging(options, blobs, Microsoft.Extensions.Logging.Abstractions.NullLogger<EphemeralCI.Cache.Entries.UploadStaging>.Instance), options, clock, Microsoft.Extensions.Logging.Abstractions.NullLogger<EphemeralCI.Cache.Entries.CacheEntryService>.Instance);
        var job = new EphemeralCI.JobTokens.JobTokenClaims(Guid.NewGuid(), "acme/sqlite", "refs/heads/feature", "t", DateTimeOffset.UtcNow.AddHours(1));
        var committedAt = clock.GetUtcNow();
        CacheEntry Committed(string key, string scope, int minutes) => new()
        {
            Repository = "acme/sqlite", Scope = scope, Key = key, Version = "v", State = CacheEntryState.Committed, SizeBytes = 1,
            CreatedAt = committedAt, CommittedAt = committedAt.AddMinutes(minutes), LastAccessedAt = committedAt,
        };
        db.Entries.AddRange(Committed("deps-old", "refs/heads/main", 1), Committed("deps-new", "refs/heads/main", 2), Committed("deps-feature", "refs/heads/other", 3));
        await db.SaveChangesAsync();

        var prefixHit = await entries.FindForRestoreAsync(job, "deps-x", ["deps-"], "v", default);
        Assert.Equal(("deps-new", "refs/heads/main"), (prefixHit?.Key, prefixHit?.Scope)); // newest on the default branch; never another branch's
        Assert.Null(await entries.FindForRestoreAsync(job, "deps-x", ["nothing-"], "v", default));

        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.NotNull(await entries.FindForRestoreAsync(job, "deps-old", [], "v", default));
        var touched = await db.Entries.AsNoTracking().Where(e => e.Key == "deps-old").Select(e => e.LastAccessedAt).SingleAsync();
        Assert.Equal(clock.GetUtcNow(), touched, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task A_concurrent_change_to_a_job_is_refused_as_on_postgres()
    {
        var id = Guid.CreateVersion7();
        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var db = Db<IntakeDbContext>(scope);
            db.Jobs.Add(NewJob(id));
            await db.SaveChangesAsync();
        }

        await using var first = _host.Services.CreateAsyncScope();
        await using var second = _host.Services.CreateAsyncScope();
        var a = await Db<IntakeDbContext>(first).Jobs.SingleAsync(j => j.Id == id);
        var b = await Db<IntakeDbContext>(second).Jobs.SingleAsync(j => j.Id == id);

        Assert.True(a.TryMoveTo(JobStatus.Provisioning, DateTimeOffset.UtcNow));
        await Db<IntakeDbContext>(first).SaveChangesAsync();
        Assert.True(b.TryMoveTo(JobStatus.Cancelled, DateTimeOffset.UtcNow, "cancelled"));
        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => Db<IntakeDbContext>(second).SaveChangesAsync());

        await using var check = _host.Services.CreateAsyncScope();
        var stored = await Db<IntakeDbContext>(check).Jobs.AsNoTracking().SingleAsync(j => j.Id == id);
        Assert.Equal(JobStatus.Provisioning, stored.Status);
        Assert.Equal(1u, stored.Version);
    }

    [Fact]
    public async Task Two_launch_claims_of_one_workflow_job_on_sqlite_let_exactly_one_win()
    {
        var seen = new WorkflowJobEvent(77, 78, 79, "acme/widgets", "refs/heads/main", "abc", ["linux"], "queued", null);
        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var db = Db<GitHubActionsDbContext>(scope);
            db.WorkflowJobs.Add(WorkflowJobRunner.Seen(seen, "linux", DateTimeOffset.UtcNow));
            await db.SaveChangesAsync();
        }
        await using var first = _host.Services.CreateAsyncScope();
        await using var second = _host.Services.CreateAsyncScope();
        var a = await Db<GitHubActionsDbContext>(first).WorkflowJobs.SingleAsync(j => j.Id == 77);
        var b = await Db<GitHubActionsDbContext>(second).WorkflowJobs.SingleAsync(j => j.Id == 77);
        Assert.True(a.TryClaimLaunch(DateTimeOffset.UtcNow));
        Assert.True(b.TryClaimLaunch(DateTimeOffset.UtcNow));
        await Db<GitHubActionsDbContext>(first).SaveChangesAsync();
        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => Db<GitHubActionsDbContext>(second).SaveChangesAsync());
    }

    [Fact]
    public async Task A_unique_violation_is_recognised_by_index_name()
    {
        var apiKey = Guid.NewGuid();
        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var db = Db<IntakeDbContext>(scope);
            db.Jobs.Add(NewJob(Guid.CreateVersion7(), apiKey, "same-key"));
            await db.SaveChangesAsync();
        }
        await using var retry = _host.Services.CreateAsyncScope();
        var again = Db<IntakeDbContext>(retry);
        again.Jobs.Add(NewJob(Guid.CreateVersion7(), apiKey, "same-key"));
        var ex = await Assert.ThrowsAsync<DbUpdateException>(() => again.SaveChangesAsync());

        Assert.True(ex.IsUniqueViolation("ix_jobs_api_key_id_idempotency_key"));
        Assert.True(ex.IsUniqueViolation());
        Assert.False(ex.IsUniqueViolation("ix_job_events_source_message_id"));
    }

    [Fact]
    public async Task Timestamps_order_and_compare_in_queries()
    {
        var now = DateTimeOffset.UtcNow;
        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var db = Db<IntakeDbContext>(scope);
            for (var i = 0; i < 3; i++)
            {
                var job = NewJob(Guid.CreateVersion7());
                job.CreatedAt = now.AddMinutes(-i).ToOffset(TimeSpan.FromHours(i)); // same instants in other offsets
                db.Jobs.Add(job);
            }
            await db.SaveChangesAsync();
        }
        await using var read = _host.Services.CreateAsyncScope();
        var newest = await Db<IntakeDbContext>(read).Jobs.Where(j => j.CreatedAt > now.AddMinutes(-1.5)).OrderByDescending(j => j.CreatedAt).Select(j => j.CreatedAt).ToListAsync();
        Assert.Equal([now, now.AddMinutes(-1)], newest);
    }

    [Fact]
    public async Task The_secrets_audit_is_append_only_on_sqlite_too()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var db = Db<SecretsDbContext>(scope);
        db.AuditEntries.Add(new AuditEntry { At = DateTimeOffset.UtcNow, Actor = "test", Action = "secret.put", SecretName = "X" });
        await db.SaveChangesAsync();

        var update = await Assert.ThrowsAnyAsync<Exception>(() => db.AuditEntries.ExecuteUpdateAsync(s => s.SetProperty(e => e.Actor, "someone else")));
        Assert.Contains("append-only", update.GetBaseException().Message);
        var delete = await Assert.ThrowsAnyAsync<Exception>(() => db.AuditEntries.ExecuteDeleteAsync());
        Assert.Contains("append-only", delete.GetBaseException().Message);
        Assert.Equal(1, await db.AuditEntries.CountAsync());
    }

    private static Job NewJob(Guid id, Guid? apiKey = null, string? idempotencyKey = null) => new()
    {
        Id = id,
        Repository = "acme/widgets",
        Ref = "refs/heads/main",
        CommitSha = "0123456789abcdef0123456789abcdef01234567",
        RunnerTemplate = "default",
        Spec = "{}",
        TimeoutSeconds = 60,
        CreatedAt = DateTimeOffset.UtcNow,
        ApiKeyId = apiKey,
        IdempotencyKey = idempotencyKey,
    };
}
