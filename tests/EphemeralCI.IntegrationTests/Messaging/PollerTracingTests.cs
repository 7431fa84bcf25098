using System.Diagnostics;
using EphemeralCI.Messaging;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit;
using static EphemeralCI.IntegrationTests.Messaging.OutboxReplicaTests;

namespace EphemeralCI.IntegrationTests.Messaging;

/// <summary>
/// Issue 21.2: the outbox dispatcher's polling is not a job's work, so its database queries make no
/// traces of their own (the Aspire dashboard's Traces page held hundreds a minute of them), while the
/// same query outside the loop is traced (the listener works, so the test can fail).
/// </summary>
public sealed class PollerTracingTests
{
    [Fact]
    public async Task The_outbox_dispatcher_polls_and_publishes_without_a_single_database_span()
    {
        var connectionString = await RealServices.CreateDatabaseAsync("pollertrace");
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        await using var services = new ServiceCollection().AddDbContext<OutboxDb>(o => o.UseNpgsql(connectionString)).BuildServiceProvider();
        var scopes = services.GetRequiredService<IServiceScopeFactory>();
        await using (var scope = scopes.CreateAsyncScope()) await scope.ServiceProvider.GetRequiredService<OutboxDb>().Database.EnsureCreatedAsync();

        var spans = new List<Activity>();
        using var tracing = Sdk.CreateTracerProviderBuilder().AddSource("Npgsql").AddInMemoryExporter(spans).Build();
        // Other test classes query other databases in this process at the same time: only ours count.
        List<Activity> Ours() { lock (spans) return spans.Where(s => s.TagObjects.Any(t => t.Value as string == database)).ToList(); }

        var bus = RecordingBus.Create();
        using var dispatcher = new OutboxDispatcher<OutboxDb>(scopes, bus.Bus, new OutboxSignal<OutboxDb>(),
            Options.Create(new OutboxOptions()), TimeProvider.System, NullLogger<OutboxDispatcher<OutboxDb>>.Instance);
        await dispatcher.StartAsync(CancellationToken.None);
        // A row committed by "someone else" (outside the loop) after a few idle passes, so the loop both polls and publishes.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<OutboxDb>();
            using (SuppressInstrumentationScope.Begin())
            {
                db.AddToOutbox(new Ping(7));
                await db.SaveChangesAsync();
            }
        }
        for (var i = 0; i < 100 && bus.Published.IsEmpty; i++) await Task.Delay(100);
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // more idle passes
        await dispatcher.StopAsync(CancellationToken.None);

        Assert.Single(bus.Published.OfType<Ping>());
        Assert.Empty(Ours());

        // The control: the same kind of query outside the dispatcher is traced, and found by the filter.
        await using (var scope = scopes.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<OutboxDb>().OutboxMessages.CountAsync(m => m.SentAt == null);
        }
        Assert.NotEmpty(Ours());
    }
}
