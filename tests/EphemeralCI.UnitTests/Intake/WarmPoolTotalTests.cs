using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using EphemeralCI.Intake.WebUi;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class WarmPoolTotalTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 22, 0, 0, TimeSpan.Zero);

    private static ReportedWarmPool Row(string instance, string template, int target, int ready, int reportedSecondsAgo, int freshForSeconds, string backend = "local") => new()
    {
        Instance = instance, Template = template, Backend = backend, Target = target, Ready = ready,
        ReportedAt = Now.AddSeconds(-reportedSecondsAgo), FreshUntil = Now.AddSeconds(freshForSeconds),
    };

    [Fact]
    public void Fresh_instances_sum_per_template_as_of_the_oldest_report_and_stale_ones_do_not_count()
    {
        var totals = WarmPoolTotal.Of(
        [
            Row("b", "warm", 3, 1, reportedSecondsAgo: 2, freshForSeconds: 43),
            Row("a", "warm", 2, 2, reportedSecondsAgo: 10, freshForSeconds: 35),
            Row("c", "warm", 9, 9, reportedSecondsAgo: 60, freshForSeconds: -15),
            // Fresh until exactly now: already stale.
            Row("d", "warm", 4, 4, reportedSecondsAgo: 45, freshForSeconds: 0),
            Row("a", "big", 1, 0, reportedSecondsAgo: 10, freshForSeconds: 35),
        ], Now);

        Assert.Equal(
        [
            new WarmPoolTotal("big", "local", 1, 0, 1, Now.AddSeconds(-10)),
            new WarmPoolTotal("warm", "local", 5, 3, 2, Now.AddSeconds(-10)),
        ], totals);
    }

    [Fact]
    public void Only_stale_reports_show_no_pool_and_a_template_on_two_backends_is_two_lines()
    {
        Assert.Empty(WarmPoolTotal.Of([Row("a", "warm", 2, 2, 100, -55)], Now));
        var totals = WarmPoolTotal.Of([Row("a", "warm", 2, 2, 1, 44, "local"), Row("b", "warm", 1, 1, 1, 44, "kubernetes")], Now);
        Assert.Equal(["kubernetes", "local"], totals.Select(t => t.Backend));
    }

    [Fact]
    public void A_report_is_refused_naming_the_field_when_it_is_out_of_bounds()
    {
        static WarmPoolReport Report(string instance, params WarmPoolState[] pools) => new(instance, pools, Now, TimeSpan.FromSeconds(15));
        Assert.Null(WarmPoolReports.Problem(Report("prov-0", new WarmPoolState("warm", "local", 2, 0))));
        Assert.Null(WarmPoolReports.Problem(Report("prov-0")));
        Assert.StartsWith("instance:", WarmPoolReports.Problem(Report(" ")));
        Assert.StartsWith("instance:", WarmPoolReports.Problem(Report(new string('p', WarmPoolReport.MaxInstanceLength + 1))));
        Assert.StartsWith("pools:", WarmPoolReports.Problem(Report("p", [.. Enumerable.Range(0, WarmPoolReport.MaxPools + 1).Select(i => new WarmPoolState($"t{i}", "local", 1, 1))])));
        Assert.StartsWith("pools.template:", WarmPoolReports.Problem(Report("p", new WarmPoolState(new string('t', WarmPoolReport.MaxTemplateLength + 1), "local", 1, 1))));
        Assert.StartsWith("pools.backend:", WarmPoolReports.Problem(Report("p", new WarmPoolState("warm", "", 1, 1))));
        Assert.StartsWith("pools.target, pools.ready:", WarmPoolReports.Problem(Report("p", new WarmPoolState("warm", "local", -1, 0))));
        Assert.StartsWith("pools.template: each template once", WarmPoolReports.Problem(Report("p", new WarmPoolState("warm", "local", 1, 1), new WarmPoolState("warm", "local", 1, 1))));
    }
}
