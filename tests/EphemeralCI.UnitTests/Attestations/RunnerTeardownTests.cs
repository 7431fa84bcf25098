using System.Diagnostics.Metrics;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Teardown;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.Attestations;

public sealed class RunnerTeardownTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private readonly List<(long Value, bool Final)> _failures = [];
    private readonly FakeBackend _backend = new();
    private static readonly RunnerRef Runner = new(Guid.NewGuid(), "runner-1", null);
    private int _releases;

    private Task Release(CancellationToken ct)
    {
        _releases++;
        return Task.CompletedTask;
    }

    public RunnerTeardownTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == TeardownMetrics.FailuresName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            lock (_failures) _failures.Add((value, tags.ToArray().Any(t => t.Key == "final" && t.Value is true)));
        });
        _listener.Start();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    private RunnerTeardown Teardown(FakeVerifier verifier, bool verify = true) => new(
        [verifier], Options.Create(new TeardownOptions { Verify = verify, RetryDelay = TimeSpan.FromMilliseconds(1) }),
        new TeardownMetrics(_services.GetRequiredService<IMeterFactory>()), TimeProvider.System, NullLogger<RunnerTeardown>.Instance);

    [Fact]
    public async Task A_clean_teardown_is_checked_once_and_passes()
    {
        var report = await Teardown(new FakeVerifier(0)).DestroyAsync(_backend, Runner, Release, default);

        Assert.NotNull(report);
        Assert.True(report.Passed);
        Assert.Equal(1, report.Attempts);
        Assert.Null(report.Leftovers);
        Assert.Equal(1, _backend.Destroys);
        Assert.Empty(_failures);
        Assert.Equal(1, _releases);
    }

    [Fact]
    public async Task The_slot_is_released_after_the_first_cleanup_before_the_check_and_only_once()
    {
        var verifier = new FakeVerifier(leftoverAttempts: 2) { Releases = () => _releases };
        await Teardown(verifier).DestroyAsync(_backend, Runner, Release, default);

        Assert.Equal([1, 1, 1], verifier.ReleasesSeen);
        Assert.Equal(1, _releases);
    }

    [Fact]
    public async Task A_leftover_runs_cleanup_again_and_is_still_told_when_the_retry_removed_it()
    {
        var report = await Teardown(new FakeVerifier(leftoverAttempts: 1)).DestroyAsync(_backend, Runner, Release, default);

        Assert.True(report!.Passed);
        Assert.Equal(2, report.Attempts);
        Assert.Equal(2, _backend.Destroys);
        Assert.Contains("attempt 1: processes: pid 4242", Assert.Single(report.Leftovers!));
        Assert.Equal([(1L, false)], _failures);
    }

    [Fact]
    public async Task A_leftover_that_stays_fails_the_check_after_three_attempts()
    {
        var report = await Teardown(new FakeVerifier(leftoverAttempts: 99)).DestroyAsync(_backend, Runner, Release, default);

        Assert.False(report!.Passed);
        Assert.Equal(3, report.Attempts);
        Assert.Equal(3, _backend.Destroys);
        Assert.Equal(3, report.Leftovers!.Count);
        Assert.Contains(report.Checks, c => c is { Name: "processes", Passed: false });
        Assert.Equal(3, _failures.Count);
        Assert.True(_failures[^1].Final);
    }

    [Fact]
    public async Task The_check_looks_for_the_runner_as_it_was_before_the_teardown()
    {
        var verifier = new FakeVerifier(0) { Alias = Guid.NewGuid() };
        await Teardown(verifier).DestroyAsync(_backend, Runner, Release, default);
        Assert.Equal(verifier.Alias, verifier.Checked);
    }

    [Fact]
    public async Task A_cleanup_that_keeps_failing_stays_an_error()
    {
        _backend.Throw = true;
        await Assert.ThrowsAsync<InvalidOperationException>(() => Teardown(new FakeVerifier(0)).DestroyAsync(_backend, Runner, Release, default));
        Assert.Equal(3, _backend.Destroys);
        Assert.Equal(0, _releases); // never cleaned up: the runner keeps its slot
    }

    [Fact]
    public async Task Turned_off_it_only_destroys()
    {
        var verifier = new FakeVerifier(0);
        Assert.Null(await Teardown(verifier, verify: false).DestroyAsync(_backend, Runner, Release, default));
        Assert.Equal(1, _backend.Destroys);
        Assert.Null(verifier.Checked);
        Assert.Equal(1, _releases);
    }

    private sealed class FakeVerifier(int leftoverAttempts) : ITeardownVerifier
    {
        private int _calls;
        public Guid? Alias { get; init; }
        public Func<int>? Releases { get; init; }
        public List<int> ReleasesSeen { get; } = [];
        public Guid? Checked { get; private set; }
        public string Backend => "fake";

        public RunnerRef Target(RunnerRef runner) => Alias is { } alias ? runner with { JobId = alias } : runner;

        public Task<IReadOnlyList<TeardownCheck>> VerifyAsync(RunnerRef target, CancellationToken ct)
        {
            Checked = target.JobId;
            if (Releases is not null) ReleasesSeen.Add(Releases());
            var left = ++_calls <= leftoverAttempts;
            return Task.FromResult<IReadOnlyList<TeardownCheck>>(
            [
                new TeardownCheck("processes", !left, "/proc", left ? "pid 4242 (sleep, in its cgroup)" : null),
                new TeardownCheck("cgroup", true, "/sys/fs/cgroup/x"),
            ]);
        }
    }

    private sealed class FakeBackend : IRunnerBackend
    {
        public int Destroys;
        public bool Throw;
        public string Name => "fake";
        public string? MissingPrerequisite() => null;
        public Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct) => throw new NotSupportedException();
        public Task KillAsync(RunnerRef runner, CancellationToken ct) => Task.CompletedTask;

        public Task DestroyAsync(RunnerRef runner, CancellationToken ct)
        {
            Destroys++;
            return Throw ? throw new InvalidOperationException("sandbox did not die") : Task.CompletedTask;
        }

        public bool IsAlive(RunnerRef runner) => false;
        public Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct) => Task.CompletedTask;
    }
}
