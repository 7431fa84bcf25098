using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Model;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Ownership;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// The Runners page of a split deployment: provisioners on buses of their own report their warm pools over the real
/// RabbitMQ, the intake (no provisioner in its process) records them in Postgres, and its page sums the fresh ones.
/// </summary>
public sealed partial class WarmPoolReportTests(RabbitMqIntakeFactory app) : IClassFixture<RabbitMqIntakeFactory>, IAsyncLifetime
{
    private IBusControl _provisionerBus = null!;

    public async Task InitializeAsync() => _provisionerBus = await app.StartBusAsync();

    public Task DisposeAsync() => _provisionerBus.StopAsync();

    [Fact]
    public async Task Reports_of_two_instances_sum_per_template_a_stale_instance_is_dropped_and_a_newer_report_updates_its_row()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (template, gone, a, b, stale) = ($"warm-{suffix}", $"gone-{suffix}", $"prov-a-{suffix}", $"prov-b-{suffix}", $"prov-stale-{suffix}");
        var now = DateTimeOffset.UtcNow;
        // An instance that stopped reporting a minute after its last report was due, and one stale for longer than the table keeps.
        await app.WithDbAsync(db =>
        {
            db.ReportedWarmPools.Add(new ReportedWarmPool { Instance = stale, Template = template, Backend = "local", Target = 7, Ready = 7, ReportedAt = now.AddMinutes(-2), FreshUntil = now.AddMinutes(-1) });
            db.ReportedWarmPools.Add(new ReportedWarmPool { Instance = stale, Template = gone, Backend = "local", Target = 1, Ready = 1, ReportedAt = now.AddHours(-3), FreshUntil = now.AddHours(-2) });
            return db.SaveChangesAsync();
        });

        // Instance A: the provisioner's own reporter over the pools it sees.
        var poolsOfA = new FakeWarmPoolStatus(new WarmPoolState(template, "local", 2, 1));
        var reporterOfA = Reporter(a, poolsOfA);
        var first = await reporterOfA.ReportAsync(CancellationToken.None);
        Assert.NotNull(first);
        // Instance B: its report as it travels.
        await _provisionerBus.Publish(new WarmPoolReport(b, [new WarmPoolState(template, "local", 3, 3)], DateTimeOffset.UtcNow, TimeSpan.FromSeconds(15)));
        await IntakeFactory.EventuallyAsync(async () => await RowsAsync(a, b) == 2, "both instances' reports recorded");

        var page = await RunnersPageAsync();
        Assert.Equal(("4", "5", "2"), Cells(page, template));
        Assert.DoesNotContain(gone, page);

        // A newer report of A updates its row in place; the first one, delivered again late, changes nothing.
        poolsOfA.Pools = [new WarmPoolState(template, "local", 2, 2)];
        await reporterOfA.ReportAsync(CancellationToken.None);
        await IntakeFactory.EventuallyAsync(() => app.WithDbAsync(db => db.ReportedWarmPools.AnyAsync(p => p.Instance == a && p.Ready == 2)), "A's newer report");
        var counter = new ConsumeCounter();
        using (app.Services.GetRequiredService<IBus>().ConnectConsumeObserver(counter))
        {
            var late = Guid.NewGuid();
            await _provisionerBus.Publish(first, ctx => ctx.MessageId = late);
            await IntakeFactory.EventuallyAsync(() => Task.FromResult(counter.Count(late) == 1), "the late report consumed");
        }
        var rowsOfA = await app.WithDbAsync(db => db.ReportedWarmPools.Where(p => p.Instance == a).ToListAsync());
        Assert.Equal(2, Assert.Single(rowsOfA).Ready);
        Assert.Equal(("5", "5", "2"), Cells(await RunnersPageAsync(), template));
        // Reports prune what is stale for longer than an hour; the recently stale row stays until then.
        Assert.Equal([template], await app.WithDbAsync(db => db.ReportedWarmPools.Where(p => p.Instance == stale).Select(p => p.Template).ToListAsync()));
    }

    [Fact]
    public async Task A_report_with_a_negative_count_or_a_template_twice_is_dropped()
    {
        var instance = "prov-bad-" + Guid.NewGuid().ToString("N")[..8];
        var counter = new ConsumeCounter();
        using var observer = app.Services.GetRequiredService<IBus>().ConnectConsumeObserver(counter);
        var negative = Guid.NewGuid();
        var twice = Guid.NewGuid();
        await _provisionerBus.Publish(new WarmPoolReport(instance, [new WarmPoolState("x", "local", 2, -1)], DateTimeOffset.UtcNow, TimeSpan.FromSeconds(15)), ctx => ctx.MessageId = negative);
        await _provisionerBus.Publish(new WarmPoolReport(instance, [new WarmPoolState("x", "local", 1, 1), new WarmPoolState("x", "local", 1, 1)], DateTimeOffset.UtcNow, TimeSpan.FromSeconds(15)), ctx => ctx.MessageId = twice);
        // Consumed once each (refused without an exception, so not retried) and nothing recorded.
        await IntakeFactory.EventuallyAsync(() => Task.FromResult(counter.Count(negative) == 1 && counter.Count(twice) == 1), "both reports consumed");
        Assert.Equal(0, await RowsAsync(instance));
    }

    [Fact]
    public async Task A_report_begins_no_trace_where_another_untraced_provisioner_message_does()
    {
        var counter = new ConsumeCounter();
        using var observer = app.Services.GetRequiredService<IBus>().ConnectConsumeObserver(counter);
        var progress = Guid.NewGuid();
        // Published outside any trace, as the provisioner's background loops publish (an unknown job: logged and dropped).
        using (SuppressInstrumentationScope.Begin())
        {
            await _provisionerBus.Publish(new RunnerProgress(Guid.NewGuid(), "scheduled", null, DateTimeOffset.UtcNow), ctx => ctx.MessageId = progress);
        }
        await Reporter("prov-quiet-" + Guid.NewGuid().ToString("N")[..8], new FakeWarmPoolStatus(new WarmPoolState("quiet", "local", 1, 1))).ReportAsync(CancellationToken.None);

        // Each began at a receive span of its own; the progress one is exported, the report's is not, nor anything under it.
        Activity? Root(string endpoint) => app.Spans.Ended.FirstOrDefault(a => a.DisplayName == endpoint + " receive" && a.ParentSpanId == default);
        await IntakeFactory.EventuallyAsync(() => Task.FromResult(counter.Count(progress) == 1 && Root("intake-runner-progress") is not null && Root(EphemeralCI.Intake.IntakeExtensions.WarmPoolReportEndpoint) is not null), "both receive spans ended");
        Assert.True(Root("intake-runner-progress")!.Recorded);
        var report = Root(EphemeralCI.Intake.IntakeExtensions.WarmPoolReportEndpoint)!;
        Assert.False(report.Recorded);
        await IntakeFactory.EventuallyAsync(() => app.WithDbAsync(db => db.ReportedWarmPools.AnyAsync(p => p.Template == "quiet")), "the report recorded");
        Assert.DoesNotContain(app.Spans.Ended, a => a.TraceId == report.TraceId && a.Recorded);
    }

    private Task<int> RowsAsync(params string[] instances) =>
        app.WithDbAsync(db => db.ReportedWarmPools.CountAsync(p => instances.Contains(p.Instance)));

    private WarmPoolReporter Reporter(string name, IWarmPoolStatus pools)
    {
        var instance = new ProvisionerInstance();
        instance.Set(name);
        return new WarmPoolReporter(pools, instance, _provisionerBus, app.Services.GetRequiredService<IHostApplicationLifetime>(),
            Options.Create(new WarmPoolReportOptions()), TimeProvider.System, NullLogger<WarmPoolReporter>.Instance);
    }

    /// <summary>Signs in with the admin key through the sign-in form (cookies kept by the client) and reads /runners.</summary>
    private async Task<string> RunnersPageAsync()
    {
        using var browser = app.CreateClient();
        var form = await browser.GetStringAsync("/signin");
        var token = WebUtility.HtmlDecode(TokenField().Match(form).Groups[1].Value);
        using var signedIn = await browser.PostAsync("/signin", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = token,
            ["key"] = app.AdminKey,
            ["returnUrl"] = "/runners",
        }));
        var page = await signedIn.Content.ReadAsStringAsync();
        Assert.True(signedIn.IsSuccessStatusCode && page.Contains("<h1>Runners</h1>", StringComparison.Ordinal), $"signing in answered {(int)signedIn.StatusCode}: {page}");
        return page;
    }

    /// <summary>The template's row of the warm pool table: ready, pool size, provisioners; and it says as of when.</summary>
    private static (string Ready, string Target, string Instances) Cells(string page, string template)
    {
        var row = Regex.Match(page, $"<tr data-template=\"{Regex.Escape(template)}\">(.*?)</tr>");
        Assert.True(row.Success, $"no warm pool row for {template}:\n{page}");
        string Cell(string label) => Regex.Match(row.Groups[1].Value, $"data-label=\"{label}\">([^<]*)<").Groups[1].Value;
        Assert.Contains("data-label=\"As of\"><time datetime=", row.Groups[1].Value);
        return (Cell("Ready"), Cell("Pool size"), Cell("Provisioners"));
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();

    /// <summary>A fake of the provisioner's in-memory pools (no sandboxes): what its reporter reads.</summary>
    private sealed class FakeWarmPoolStatus(params WarmPoolState[] pools) : IWarmPoolStatus
    {
        public IReadOnlyList<WarmPoolState> Pools { get; set; } = pools;

        public IReadOnlyList<WarmPoolState> Current() => Pools;
    }
}
