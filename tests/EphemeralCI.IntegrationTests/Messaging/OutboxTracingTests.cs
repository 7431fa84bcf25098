using System.Collections.Concurrent;
using System.Diagnostics;
using EphemeralCI.Messaging;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit;
using static EphemeralCI.IntegrationTests.Messaging.OutboxReplicaTests;

namespace EphemeralCI.IntegrationTests.Messaging;

/// <summary>
/// One trace per job across the bus: a message staged in the outbox by traced work (a job's request, a
/// consumer) is published — later, by the dispatcher's untraced loop — in that trace again, and the
/// consumer on the other side of a real MassTransit bus joins it. A message staged by untraced
/// background work starts no trace at the publish.
/// </summary>
public sealed class OutboxTracingTests
{
    private static readonly ActivitySource Job = new("EphemeralCI.IntegrationTests.Job");

    [Fact]
    public async Task A_message_staged_in_a_jobs_trace_is_published_and_consumed_in_that_trace()
    {
        var connectionString = await RealServices.CreateDatabaseAsync("outboxtrace");
        await using var services = new ServiceCollection().AddDbContext<OutboxDb>(o => o.UseNpgsql(connectionString)).BuildServiceProvider();
        var scopes = services.GetRequiredService<IServiceScopeFactory>();
        await using (var scope = scopes.CreateAsyncScope()) await scope.ServiceProvider.GetRequiredService<OutboxDb>().Database.EnsureCreatedAsync();

        var spans = new List<Activity>();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(Job.Name, OutboxTelemetry.Name, "MassTransit").AddInMemoryExporter(spans).Build();
        var consumed = new ConcurrentDictionary<int, ActivityTraceId?>();
        var bus = Bus.Factory.CreateUsingInMemory(cfg => cfg.ReceiveEndpoint("ping-" + Guid.NewGuid().ToString("N")[..6], e =>
            e.Handler<Ping>(ctx =>
            {
                consumed[ctx.Message.N] = Activity.Current?.TraceId;
                return Task.CompletedTask;
            })));
        await bus.StartAsync();
        try
        {
            // Staged inside a job's span (as the intake's submit or a provisioner consumer does), and outside any.
            ActivityTraceId jobTrace;
            ActivitySpanId jobSpan;
            await using (var scope = scopes.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<OutboxDb>();
                using (var submit = Job.StartActivity("submit job"))
                {
                    Assert.NotNull(submit);
                    (jobTrace, jobSpan) = (submit.TraceId, submit.SpanId);
                    db.AddToOutbox(new Ping(1));
                }
                Assert.Null(Activity.Current);
                db.AddToOutbox(new Ping(2));
                await db.SaveChangesAsync();
                var rows = await db.OutboxMessages.AsNoTracking().OrderBy(m => m.Id).Select(m => m.TraceParent).ToListAsync();
                Assert.StartsWith($"00-{jobTrace}-{jobSpan}-", rows[0]);
                Assert.Null(rows[1]);
            }

            using var dispatcher = new OutboxDispatcher<OutboxDb>(scopes, bus, new OutboxSignal<OutboxDb>(),
                Options.Create(new OutboxOptions()), TimeProvider.System, NullLogger<OutboxDispatcher<OutboxDb>>.Instance);
            await dispatcher.StartAsync(CancellationToken.None);
            for (var i = 0; i < 100 && consumed.Count < 2; i++) await Task.Delay(100);
            await dispatcher.StopAsync(CancellationToken.None);

            Assert.Equal(2, consumed.Count);
            // The job's message: its consumer ran in the job's trace, under the publish span the dispatcher made for it.
            Assert.Equal(jobTrace, consumed[1]);
            List<Activity> finished;
            lock (spans) finished = [.. spans];
            // Only this job's trace: the listener is process-wide, and other tests' dispatchers publish at the same time.
            var publish = Assert.Single(finished, s => s.Source.Name == OutboxTelemetry.Name && s.TraceId == jobTrace);
            Assert.Equal("outbox publish Ping", publish.DisplayName);
            Assert.Equal(jobTrace, publish.TraceId);
            Assert.Equal(jobSpan, publish.ParentSpanId);
            // The untraced one joined no job's trace.
            Assert.NotEqual(jobTrace, consumed[2] ?? default);
        }
        finally
        {
            await bus.StopAsync();
        }
    }
}
