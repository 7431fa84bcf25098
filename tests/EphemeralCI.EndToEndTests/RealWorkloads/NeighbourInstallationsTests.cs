using Xunit;
using static EphemeralCI.EndToEndTests.RealWorkloads.Workloads;

namespace EphemeralCI.EndToEndTests.RealWorkloads;

/// <summary>
/// Two installations on one machine, as a newcomer gets them by trying both ways the README offers
/// (or two teams on one build host): each runs minute-long jobs while both reconcilers tick every
/// second, and each sweeps only what carries its own installation id.
/// </summary>
public sealed class NeighbourInstallationsTests(TwoNeighboursFixture both) : IClassFixture<TwoNeighboursFixture>
{
    [Fact]
    public async Task Two_installations_run_minute_long_jobs_side_by_side_and_each_sweeps_only_its_own_leftovers()
    {
        var (a, b) = (both.First, both.Second);
        var (markA, markB) = (a.OutputMark, b.OutputMark);

        var jobsA = new List<(Guid, int)>();
        var jobsB = new List<(Guid, int)>();
        foreach (var seconds in new[] { 40, 45, 50, 55, 60 })
        {
            jobsA.Add((await a.Intake.SubmitAsync(Ticking($"first {seconds}s", seconds)), seconds));
            jobsB.Add((await b.Intake.SubmitAsync(Ticking($"second {seconds}s", seconds)), seconds));
        }

        // What a crash between "created" and "recorded" leaves: a cgroup with a live process and a
        // runner folder, one set in each installation's own places.
        var (leftoverA, leftoverB) = (Guid.NewGuid(), Guid.NewGuid());
        using var cgroupA = new PlantedCgroup(Path.Combine(a.JobCgroupParent(), leftoverA.ToString()));
        using var cgroupB = new PlantedCgroup(Path.Combine(b.JobCgroupParent(), leftoverB.ToString()));
        Directory.CreateDirectory(Path.Combine(a.RunnerWorkRoot, leftoverA.ToString(), "workspace"));
        Directory.CreateDirectory(Path.Combine(b.RunnerWorkRoot, leftoverB.ToString(), "workspace"));
        // And something of neither: a job cgroup where every installation used to put them, as an
        // EphemeralCI from before installation ids (or anyone else) leaves it. Reported, never killed.
        var stranger = new PlantedCgroup(Path.Combine(Path.GetDirectoryName(a.JobCgroupParent())!, Guid.NewGuid().ToString()));
        using var _ = stranger;

        await WaitUntilAsync(() => !cgroupA.Alive && !cgroupB.Alive, TimeSpan.FromSeconds(15), "both planted leftovers to be killed");
        await WaitUntilAsync(() => !Directory.Exists(cgroupA.Directory) && !Directory.Exists(cgroupB.Directory)
                                   && !Directory.Exists(Path.Combine(a.RunnerWorkRoot, leftoverA.ToString()))
                                   && !Directory.Exists(Path.Combine(b.RunnerWorkRoot, leftoverB.ToString())),
            TimeSpan.FromSeconds(15), "both leftovers to be removed");

        await AssertAllSucceedAsync(a, jobsA, TimeSpan.FromMinutes(4));
        await AssertAllSucceedAsync(b, jobsB, TimeSpan.FromMinutes(2));

        // Each removed its own leftover and never touched the other's.
        var logA = string.Join('\n', a.OutputSince(markA));
        var logB = string.Join('\n', b.OutputSince(markB));
        Assert.Contains(leftoverA.ToString(), logA);
        Assert.DoesNotContain(leftoverB.ToString(), logA);
        Assert.Contains(leftoverB.ToString(), logB);
        Assert.DoesNotContain(leftoverA.ToString(), logB);

        // The stranger lived through a minute of both reconcilers' ticks, and each said so once.
        Assert.True(stranger.Alive, "a cgroup of unknown ownership was killed");
        var strangerName = Path.GetFileName(stranger.Directory);
        Assert.Equal(1, a.OutputSince(markA).Count(l => l.Contains(strangerName, StringComparison.Ordinal)));
        Assert.Equal(1, b.OutputSince(markB).Count(l => l.Contains(strangerName, StringComparison.Ordinal)));
    }
}

/// <summary>A job of three minutes, beside the neighbours of the other tests.</summary>
public sealed class ThreeMinuteJobTests(NeighbourServerFixture server) : IClassFixture<NeighbourServerFixture>
{
    [Fact]
    public async Task A_three_minute_job_succeeds()
    {
        var id = await server.Intake.SubmitAsync(JobClient.Job("three minutes", 400,
            ("work", "for i in $(seq 1 36); do echo \"tick $i of 36\"; sleep 5; done")));
        await AssertAllSucceedAsync(server, [(id, 36)], TimeSpan.FromMinutes(5));
    }
}

/// <summary>A step that prints nothing for a minute and a half: no connection, relay or watchdog may give up on it.</summary>
public sealed class IdleStepTests(NeighbourServerFixture server) : IClassFixture<NeighbourServerFixture>
{
    [Fact]
    public async Task A_step_idle_for_90_seconds_succeeds()
    {
        var id = await server.Intake.SubmitAsync(JobClient.Job("idle", 300,
            ("begin", "echo begin"), ("idle", "sleep 90"), ("end", "echo \"tick 1 of 1\"")));
        await AssertAllSucceedAsync(server, [(id, 1)], TimeSpan.FromMinutes(4));
    }
}

/// <summary>Forty jobs of 20–60 s at once, each printing every second.</summary>
public sealed class ConcurrentLongJobsTests(NeighbourServerFixture server) : IClassFixture<NeighbourServerFixture>
{
    [Fact]
    public async Task Forty_concurrent_jobs_of_20_to_60_seconds_all_succeed_with_their_whole_logs()
    {
        var jobs = new List<(Guid, int)>();
        for (var i = 0; i < 40; i++)
        {
            var seconds = 20 + i;
            jobs.Add((await server.Intake.SubmitAsync(Ticking($"concurrent {i}", seconds)), seconds));
        }
        await AssertAllSucceedAsync(server, jobs, TimeSpan.FromMinutes(5));
    }
}

/// <summary>
/// A burst of short jobs with the reconciler ticking every second: runners start and finish between
/// any pass's snapshot and its decisions, and none of that may read as "unsupervised" or "vanished".
/// </summary>
public sealed class ReconcilerBurstTests(FastReconcilerServerFixture server) : IClassFixture<FastReconcilerServerFixture>
{
    [Fact]
    public async Task A_burst_of_300_jobs_with_the_reconciler_at_one_second_logs_no_warning()
    {
        var mark = server.OutputMark;
        var ids = new Guid[300];
        await Parallel.ForEachAsync(Enumerable.Range(0, ids.Length), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            ids[i] = await server.Intake.SubmitAsync(JobClient.Job($"burst {i}", null, ("hello", "echo \"tick 1 of 1\""))));

        await AssertAllSucceedAsync(server, ids.Select(id => (id, 1)).ToList(), TimeSpan.FromMinutes(5));

        // Console log levels: warn, fail (error), crit.
        var complaints = server.OutputSince(mark).Where(l => l.StartsWith("warn:", StringComparison.Ordinal)
            || l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal)).ToList();
        var output = server.OutputSince(mark);
        Assert.True(complaints.Count == 0,
            $"{complaints.Count} warnings or errors during a healthy burst, e.g.:\n" +
            string.Join('\n', output.Select((l, n) => (l, n)).Where(x => complaints.Contains(x.l)).Take(5)
                .Select(x => string.Join('\n', output.Skip(x.n).Take(40)))));
    }
}
