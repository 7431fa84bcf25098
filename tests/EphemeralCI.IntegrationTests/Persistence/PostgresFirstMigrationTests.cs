using System.Collections.Concurrent;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EphemeralCI.IntegrationTests.Persistence;

/// <summary>
/// Issue 21.1: a service's first start on an empty Postgres database logs no error. EF's history probe
/// used to log "Failed executing DbCommand" (relation "__EFMigrationsHistory" does not exist), a red
/// badge on every service in the Aspire dashboard; a second start must be as quiet.
/// </summary>
public sealed class PostgresFirstMigrationTests
{
    [Fact]
    public async Task A_first_and_a_second_migration_of_an_empty_database_log_nothing_at_warning_or_above()
    {
        var captured = new CapturingLoggerProvider();
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["ConnectionStrings:intakedb"] = await RealServices.CreateDatabaseAsync("firstmig");
        builder.Configuration["ConnectionStrings:provisionerdb"] = await RealServices.CreateDatabaseAsync("firstmig");
        builder.Logging.ClearProviders().AddProvider(captured).SetMinimumLevel(LogLevel.Debug);
        // EF's own log, whatever the host's logging does with it: "dbug:", "info:", "warn:", "fail:" first.
        var ef = new ConcurrentQueue<string>();
        builder.AddModuleDbContext<IntakeDbContext>("intakedb", o => o.UseSnakeCaseNamingConvention().LogTo(ef.Enqueue, LogLevel.Debug));
        builder.AddModuleDbContext<ProvisionerDbContext>("provisionerdb", o => o.LogTo(ef.Enqueue, LogLevel.Debug));
        using var host = builder.Build();
        var scopes = host.Services.GetRequiredService<IServiceScopeFactory>();
        var logger = host.Services.GetRequiredService<ILogger<PostgresFirstMigrationTests>>();

        for (var start = 0; start < 2; start++)
        {
            await ModuleDatabaseMigration.MigrateAsync<IntakeDbContext>(scopes, TimeProvider.System, logger, null, CancellationToken.None);
            await ModuleDatabaseMigration.MigrateAsync<ProvisionerDbContext>(scopes, TimeProvider.System, logger, null, CancellationToken.None);
        }

        // The probe ran (so the test can fail): EF logged its commands on the history table.
        Assert.Contains(ef, line => line.Contains("__EFMigrationsHistory", StringComparison.Ordinal));
        var loud = ef.Where(line => line.StartsWith("warn:") || line.StartsWith("fail:") || line.StartsWith("crit:"))
            .Concat(captured.Records.Where(r => r.Level >= LogLevel.Warning).Select(r => $"{r.Level} {r.Category}: {r.Message}")).ToList();
        Assert.True(loud.Count == 0, string.Join("\n", loud));
        await using var scope = scopes.CreateAsyncScope();
        Assert.NotEmpty(await scope.ServiceProvider.GetRequiredService<IntakeDbContext>().Database.GetAppliedMigrationsAsync());
    }

    private sealed record Record(LogLevel Level, string Category, string Message);

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<Record> Records { get; } = new();
        public ILogger CreateLogger(string categoryName) => new Capturing(this, categoryName);
        public void Dispose() { }

        private sealed class Capturing(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Records.Enqueue(new Record(logLevel, category, formatter(state, exception)));
        }
    }
}
