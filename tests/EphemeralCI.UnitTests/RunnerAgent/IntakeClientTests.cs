using System.Net;
using System.Text;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.RunnerAgent;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerAgent;

/// <summary>The agent's reports: retried through an outage until the job's deadline, never through a refusal.</summary>
public sealed class IntakeClientTests
{
    private static string TokenExpiringIn(TimeSpan left)
    {
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{B64("{\"alg\":\"ES256\"}")}.{B64($"{{\"sub\":\"job\",\"exp\":{DateTimeOffset.UtcNow.Add(left).ToUnixTimeSeconds()}}}")}.c2ln";
    }

    private sealed class Scripted(Func<int, HttpStatusCode> answer) : HttpMessageHandler
    {
        public int Calls;
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var n = Interlocked.Increment(ref Calls);
            return Task.FromResult(new HttpResponseMessage(answer(n)));
        }
    }

    private static IntakeClient Client(Scripted handler, TimeSpan deadline) =>
        new(new HttpClient(handler) { BaseAddress = new Uri("http://intake/") }, TokenExpiringIn(deadline));

    [Fact]
    public void The_deadline_is_the_tokens_expiry()
    {
        var token = TokenExpiringIn(TimeSpan.FromMinutes(10));
        var deadline = IntakeClient.DeadlineOf(token);
        Assert.NotNull(deadline);
        Assert.InRange(deadline.Value - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(11));
        Assert.Null(IntakeClient.DeadlineOf("not-a-jwt"));
        Assert.Null(IntakeClient.DeadlineOf("a.b!.c"));
    }

    [Fact]
    public async Task A_report_is_retried_through_more_failures_than_the_old_eight_attempts()
    {
        var handler = new Scripted(n => n <= 12 ? HttpStatusCode.BadGateway : HttpStatusCode.NoContent);
        using var client = Client(handler, TimeSpan.FromMinutes(5));

        await client.CompleteAsync(new RunnerCompletion(true, 0, null), CancellationToken.None);

        Assert.Equal(13, handler.Calls);
    }

    [Fact]
    public async Task A_refusal_is_not_retried()
    {
        var handler = new Scripted(_ => HttpStatusCode.Unauthorized);
        using var client = Client(handler, TimeSpan.FromMinutes(5));

        await Assert.ThrowsAsync<HttpRequestException>(() => client.CompleteAsync(new RunnerCompletion(true, 0, null), CancellationToken.None));
        Assert.Equal(1, handler.Calls);
    }

    private sealed class Problem(string json) : HttpMessageHandler
    {
        public int Calls;
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Conflict)
            {
                Content = new StringContent(json, Encoding.UTF8, "application/problem+json"),
            });
        }
    }

    [Fact]
    public async Task A_409_saying_the_job_ended_is_the_end_of_the_work_and_a_lost_attempts_409_stays_a_refusal()
    {
        var ended = new Problem("""{"status":409,"title":"The job has finished","conflict":"job-ended","jobStatus":"cancelled"}""");
        using (var client = new IntakeClient(new HttpClient(ended) { BaseAddress = new Uri("http://intake/") }, TokenExpiringIn(TimeSpan.FromMinutes(5))))
        {
            var e = await Assert.ThrowsAsync<JobEndedException>(() => client.GetCommandsAsync(1, TimeSpan.FromSeconds(25), CancellationToken.None));
            Assert.Equal("cancelled", e.Status);
            await Assert.ThrowsAsync<JobEndedException>(() => client.PostLogAsync(0, "x"u8.ToArray(), CancellationToken.None));
            await Assert.ThrowsAsync<JobEndedException>(() => client.PostEventAsync(new RunnerStepEvent("step.finished", 0, "shell", 0, DateTimeOffset.UtcNow), CancellationToken.None));
            Assert.Equal(3, ended.Calls); // not retried
        }

        foreach (var other in (string[])["""{"status":409,"title":"This runner's attempt is over","conflict":"attempt-over","attempt":2}""", """{"status":409}""", "not json"])
        {
            var refused = new Problem(other);
            using var client = new IntakeClient(new HttpClient(refused) { BaseAddress = new Uri("http://intake/") }, TokenExpiringIn(TimeSpan.FromMinutes(5)));
            var e = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetCommandsAsync(1, TimeSpan.FromSeconds(25), CancellationToken.None));
            Assert.Equal(HttpStatusCode.Conflict, e.StatusCode);
            Assert.Equal(1, refused.Calls);
        }
    }

    [Fact]
    public async Task Retries_end_at_the_jobs_deadline()
    {
        var handler = new Scripted(_ => HttpStatusCode.ServiceUnavailable);
        using var client = Client(handler, TimeSpan.FromSeconds(3));
        var started = DateTimeOffset.UtcNow;

        await Assert.ThrowsAsync<TimeoutException>(() => client.CompleteAsync(new RunnerCompletion(true, 0, null), CancellationToken.None));

        Assert.InRange(DateTimeOffset.UtcNow - started, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));
        Assert.True(handler.Calls > 2);
    }

    [Fact]
    public async Task After_fetching_the_job_every_report_carries_the_jobs_trace_context_and_a_malformed_one_is_not_sent()
    {
        const string traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        foreach (var (given, sent) in new[] { (traceParent, traceParent), ("00-xyz\r\nX-Injected: 1", null), (null, null) })
        {
            var seen = new List<string?>();
            var handler = new Recording(request =>
            {
                seen.Add(request.Headers.TryGetValues("traceparent", out var v) ? string.Join(",", v) : null);
                return request.RequestUri!.AbsolutePath == RunnerApiRoutes.Job
                    ? System.Net.Http.Json.JsonContent.Create(new RunnerJob(Guid.NewGuid(), new EphemeralCI.Contracts.Jobs.JobSpec(), given))
                    : null;
            });
            using var client = new IntakeClient(new HttpClient(handler) { BaseAddress = new Uri("http://intake/") }, TokenExpiringIn(TimeSpan.FromMinutes(5)));

            await client.GetJobAsync(CancellationToken.None);
            await client.CompleteAsync(new RunnerCompletion(true, 0, null), CancellationToken.None);

            Assert.Equal([null, sent], seen);
        }
    }

    [Fact]
    public async Task The_secrets_exchange_joins_the_jobs_trace_once_told_and_not_before()
    {
        const string traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        var seen = new List<string?>();
        var handler = new Recording(request =>
        {
            seen.Add(request.Headers.TryGetValues("traceparent", out var v) ? string.Join(",", v) : null);
            return new StringContent("""{"secrets":{},"denied":{}}""", Encoding.UTF8, "application/json");
        });
        using var secrets = new SecretsClient(new HttpClient(handler) { BaseAddress = new Uri("http://broker/") }, "token");

        await secrets.ExchangeAsync(["A"], CancellationToken.None);
        secrets.JoinTrace("00-not\r\na-trace");
        await secrets.ExchangeAsync(["A"], CancellationToken.None);
        secrets.JoinTrace(traceParent);
        await secrets.ExchangeAsync(["A"], CancellationToken.None);

        Assert.Equal([null, null, traceParent], seen);
    }

    private sealed class Recording(Func<HttpRequestMessage, HttpContent?> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct) =>
            Task.FromResult(answer(request) is { } content
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = content }
                : new HttpResponseMessage(HttpStatusCode.NoContent));
    }
}
