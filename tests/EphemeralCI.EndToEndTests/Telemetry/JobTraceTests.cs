using System.Diagnostics;
using System.Net.Http.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests.Telemetry;

/// <summary>The all-in-one server exporting its traces over OTLP to a receiver in the test, as to an operator's collector.</summary>
public sealed class TracedServerFixture : ServerFixture, IAsyncLifetime
{
    public OtlpTraceReceiver Collector { get; } = new();

    async Task IAsyncLifetime.InitializeAsync()
    {
        foreach (var (name, value) in Collector.ExporterEnvironment) ExtraEnvironment[name] = value;
        await InitializeAsync();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await Collector.DisposeAsync();
    }
}

/// <summary>
/// A job is one trace: from the CI system's submission through the bus to the provisioner, into the
/// runner (the agent's job fetch, secrets exchange, cache calls, reports) and back to the intake when
/// the runner is destroyed — read from the spans the server really exported, not from its code.
/// </summary>
public sealed class JobTraceTests(TracedServerFixture fx) : IClassFixture<TracedServerFixture>
{
    [Fact]
    public async Task A_job_is_one_trace_from_its_submission_through_the_provisioner_and_the_agent_to_its_runners_end()
    {
        using (var put = await fx.SecretsAdmin.PutAsJsonAsync("/api/v1/admin/secrets/TRACE_TOKEN", new
        {
            value = "trace-" + Guid.NewGuid().ToString("N"),
            repositories = new[] { "acme/*" },
            refs = new[] { "refs/heads/main" },
        }))
        {
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }
        // The CI system's own trace, as a traced caller sends it: the job's spans must continue it.
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        using var submit = new HttpRequestMessage(HttpMethod.Post, "/api/v1/jobs")
        {
            Content = JsonContent.Create(new
            {
                name = "traced",
                repository = "acme/widgets",
                @ref = "refs/heads/main",
                commitSha = "0123456789abcdef0123456789abcdef01234567",
                runnerTemplate = "default",
                secrets = new[] { "TRACE_TOKEN" },
                caches = new[] { new { key = "trace-" + traceId[..12], paths = new[] { "deps" } } },
                steps = new[] { new { name = "build", run = "test -n \"$TRACE_TOKEN\" && mkdir -p deps && echo built > deps/out.txt" } },
            }),
        };
        submit.Headers.TryAddWithoutValidation("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
        using var response = await fx.Intake.SendAsync(submit);
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        Assert.True(response.IsSuccessStatusCode, body.ToString());
        var id = body.GetProperty("id").GetGuid();

        var job = await fx.Intake.WaitForTerminalAsync(id);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", $"{job}\n{await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs")}");
        await fx.WaitForVerifiedRunnerEndAsync(id);

        // Each part of the job's life, as the span that shows it.
        var expected = new (string What, Func<ReceivedSpan, bool> Is)[]
        {
            ("the intake accepts the submission", s => IsServer(s, "POST", "/api/v1/jobs")),
            ("the outbox publishes RunJob", s => s.Name == "outbox publish RunJob"),
            ("the provisioner consumes RunJob", s => IsConsumer(s, "RunJob")),
            // (The agent's first call, the fetch of its job, is its own short trace: the job's context comes with the answer.)
            ("the agent reports a step", s => IsServer(s, "POST", EphemeralCI.Contracts.Runner.RunnerApiRoutes.Events)),
            ("the agent exchanges its token for the secret", s => IsServer(s, "POST", "/api/v1/secrets/exchange")),
            ("the agent asks the cache", s => s.Kind == 2 && (s.Attribute("url.path") ?? "").Contains("CacheService/", StringComparison.Ordinal)),
            ("the agent reports its result", s => IsServer(s, "POST", EphemeralCI.Contracts.Runner.RunnerApiRoutes.Complete)),
            ("the intake hears the runner was destroyed", s => IsConsumer(s, "RunnerDestroyed")),
        };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        List<ReceivedSpan> trace;
        while (true)
        {
            trace = fx.Collector.Spans.Where(s => s.TraceId == traceId).ToList();
            if (expected.All(e => trace.Any(e.Is)) || DateTime.UtcNow > deadline) break;
            await Task.Delay(250);
        }
        var missing = expected.Where(e => !trace.Any(e.Is)).Select(e => e.What).ToList();
        Assert.True(missing.Count == 0,
            $"not in the job's trace: {string.Join("; ", missing)}\nthe trace:\n{Describe(trace)}\n" +
            $"spans of other traces: {fx.Collector.Spans.Count - trace.Count}\n{Describe(fx.Collector.Spans.Where(s => s.TraceId != traceId).Take(60))}");

        // One trace, not pieces: every span's parent is in it (or is the CI system's span the trace began with).
        var ids = trace.Select(s => s.SpanId).ToHashSet();
        var entry = trace.Single(expected[0].Is);
        var orphans = trace.Where(s => s != entry && (s.ParentSpanId is null || !ids.Contains(s.ParentSpanId))).ToList();
        Assert.True(orphans.Count == 0, $"spans of the job whose parent is not in its trace:\n{Describe(orphans)}\nthe trace:\n{Describe(trace)}");

        // And nothing else makes traces of its own: after a few idle seconds of outbox polling, reconciling,
        // pumping and sweeping, every trace still begins with a request someone made to the server.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var background = fx.Collector.Spans.Where(s => s.ParentSpanId is null && !(s.Kind == 2 && s.Scope == "Microsoft.AspNetCore")).ToList();
        Assert.True(background.Count == 0, $"traces that no request began (background work should not trace itself):\n{Describe(background)}");
        Assert.All(trace, s => Assert.Equal("EphemeralCI.Server", s.Service));
    }

    private static bool IsServer(ReceivedSpan s, string method, string path) =>
        s.Kind == 2 && s.Attribute("http.request.method") == method && s.Attribute("url.path") == path;

    /// <summary>A MassTransit consume span of <paramref name="message"/> (its name is the queue's, its tag the message type).</summary>
    private static bool IsConsumer(ReceivedSpan s, string message) =>
        s.Scope == "MassTransit" && s.Kind == 5 && (s.Attribute("messaging.masstransit.message_types") ?? s.Name).Contains(message, StringComparison.Ordinal);

    private static string Describe(IEnumerable<ReceivedSpan> spans) =>
        string.Join("\n", spans.Select(s => $"  {s} {s.Attribute("url.path")} {s.Attribute("messaging.masstransit.message_types")} {s.Attribute("messaging.masstransit.consumer_type")}"));
}
