using System.Collections.Concurrent;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// On the real RabbitMQ: a submitted job's RunJob leaves through the outbox and reaches a
/// consumer, and the intake's consumers deduplicate redeliveries by MessageId.
/// </summary>
public sealed class RabbitMqDeliveryTests(RabbitMqIntakeFactory app) : IClassFixture<RabbitMqIntakeFactory>, IAsyncLifetime
{
    private readonly ConcurrentDictionary<Guid, ConsumeContext<RunJob>> _runJobs = new();
    private IBusControl _probe = null!;

    public async Task InitializeAsync()
    {
        // A separate bus with a private, auto-deleted queue: it sees every RunJob published, like the provisioner would.
        _probe = await app.StartBusAsync(cfg => cfg.ReceiveEndpoint($"intake-test-probe-{Guid.NewGuid():N}", e =>
        {
            e.AutoDelete = true;
            e.Durable = false;
            e.Handler<RunJob>(ctx => { _runJobs[ctx.Message.JobId] = ctx; return Task.CompletedTask; });
        }));
    }

    public Task DisposeAsync() => _probe.StopAsync();

    [Fact]
    public async Task Submitted_job_is_published_as_RunJob_with_the_outbox_message_id()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci, Jobs.Valid(template: "small", timeoutSeconds: 45));

        await IntakeFactory.EventuallyAsync(() => Task.FromResult(_runJobs.ContainsKey(id)), "RunJob received from RabbitMQ");
        var received = _runJobs[id];
        Assert.Equal("small", received.Message.RunnerTemplate);
        Assert.Equal(45, received.Message.TimeoutSeconds);
        Assert.Equal("acme/widgets", received.Message.Repository);

        var row = await app.WithDbAsync(db => db.OutboxMessages.SingleAsync(m => m.MessageId == received.MessageId));
        Assert.NotNull(row.SentAt);
    }

    [Fact]
    public async Task A_redelivered_provisioner_message_is_recorded_once()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci);
        var counter = new ConsumeCounter();
        using var observer = app.Services.GetRequiredService<IBus>().ConnectConsumeObserver(counter);

        var messageId = Guid.NewGuid();
        var message = new JobProvisioning(id, "local", DateTimeOffset.UtcNow);
        await _probe.Publish(message, ctx => ctx.MessageId = messageId);
        await _probe.Publish(message, ctx => ctx.MessageId = messageId);

        await IntakeFactory.EventuallyAsync(() => Task.FromResult(counter.Count(messageId) >= 2), "both deliveries consumed");
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.Provisioning));
    }
}

/// <summary>RabbitMQ is down when the job is submitted: the job is still accepted and its message waits in the outbox.</summary>
public sealed class BrokerDownTests(UnreachableRabbitMqIntakeFactory app) : IClassFixture<UnreachableRabbitMqIntakeFactory>
{
    [Fact]
    public async Task Job_is_accepted_and_its_RunJob_stays_in_the_outbox_unsent()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci);

        // Wait until the dispatcher has really tried (and failed) to publish, then check nothing was lost.
        await IntakeFactory.EventuallyAsync(
            () => app.WithDbAsync(db => db.OutboxMessages.AnyAsync(m => m.Body.Contains(id.ToString()) && m.Attempts > 0)),
            "a failed publish attempt", seconds: 60);
        var row = await app.WithDbAsync(db => db.OutboxMessages.SingleAsync(m => m.Body.Contains(id.ToString())));
        Assert.Null(row.SentAt);
        Assert.NotNull(row.LastError);
        Assert.Equal(1, await app.WithDbAsync(db => db.Jobs.CountAsync(j => j.Id == id)));
    }
}

/// <summary>
/// The intake runs before any provisioner ever started on this broker: RabbitMQ would drop a
/// RunJob that no queue is bound for. The outbox publishes it as mandatory, so it waits until the
/// provisioner's queue exists and is then delivered — the job is not lost.
/// </summary>
public sealed class NoConsumerYetTests(NoConsumerYetIntakeFactory app) : IClassFixture<NoConsumerYetIntakeFactory>
{
    [Fact]
    public async Task RunJob_waits_in_the_outbox_until_a_consumer_queue_exists_then_arrives()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci);

        await IntakeFactory.EventuallyAsync(
            () => app.WithDbAsync(db => db.OutboxMessages.AnyAsync(m => m.Body.Contains(id.ToString()) && m.Attempts > 0 && m.LastError != null)),
            "a returned (unroutable) publish", seconds: 60);
        Assert.Null((await app.WithDbAsync(db => db.OutboxMessages.SingleAsync(m => m.Body.Contains(id.ToString())))).SentAt);

        // Now the provisioner's queue appears.
        var received = new TaskCompletionSource<RunJob>(TaskCreationOptions.RunContinuationsAsynchronously);
        var uri = new Uri(app.VirtualHost);
        var consumer = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(uri, h =>
            {
                var user = uri.UserInfo.Split(':', 2);
                h.Username(Uri.UnescapeDataString(user[0]));
                h.Password(Uri.UnescapeDataString(user[1]));
            });
            cfg.ReceiveEndpoint("run-job", e => e.Handler<RunJob>(ctx =>
            {
                if (ctx.Message.JobId == id) received.TrySetResult(ctx.Message);
                return Task.CompletedTask;
            }));
        });
        await consumer.StartAsync();
        try
        {
            var message = await received.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(id, message.JobId);
            await IntakeFactory.EventuallyAsync(
                () => app.WithDbAsync(db => db.OutboxMessages.AnyAsync(m => m.Body.Contains(id.ToString()) && m.SentAt != null)),
                "the outbox row marked sent");
        }
        finally
        {
            await consumer.StopAsync();
        }
    }
}
