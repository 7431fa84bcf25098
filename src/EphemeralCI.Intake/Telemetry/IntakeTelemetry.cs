using System.Diagnostics;
using System.Diagnostics.Metrics;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;

namespace EphemeralCI.Intake.Telemetry;

/// <summary>
/// The intake's meter and activity source (docs/telemetry.md lists every instrument). ServiceDefaults
/// listens to every <c>EphemeralCI.*</c> meter and source, so a new module needs nothing more.
/// </summary>
public static class IntakeTelemetry
{
    public const string Name = "EphemeralCI.Intake";
    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    private static readonly Counter<long> Submitted = Meter.CreateCounter<long>(
        "eci.jobs.submitted", "{job}", "Jobs accepted by the intake (replays of an idempotency key not counted).");
    private static readonly Counter<long> Finished = Meter.CreateCounter<long>(
        "eci.jobs.finished", "{job}", "Jobs that reached a terminal state, by outcome.");
    private static readonly Counter<long> Retried = Meter.CreateCounter<long>(
        "eci.jobs.retried", "{attempt}", "Attempts started again on a new runner because the previous runner was lost (retry.infrastructure).");
    private static readonly Histogram<double> QueueWait = Meter.CreateHistogram<double>(
        "eci.jobs.queue_wait", "s", "From submission until the job's runner was started.");
    private static readonly Histogram<double> RunnerStart = Meter.CreateHistogram<double>(
        "eci.runners.start_latency", "s", "From the provisioner's receipt of the job until the runner agent fetched it to run its first step.");
    private static readonly Histogram<double> Teardown = Meter.CreateHistogram<double>(
        "eci.runners.teardown_latency", "s", "From the job's end until its runner was reported destroyed.");

    public static void JobSubmitted(string template) => Submitted.Add(1, new KeyValuePair<string, object?>("template", template));

    /// <summary>Records what a committed change of status means: started (queue wait) or over (outcome).</summary>
    public static void StatusChanged(Job job, JobStatus before)
    {
        if (job.Status == before) return;
        var template = new KeyValuePair<string, object?>("template", job.RunnerTemplate);
        // Back to queued: only a retry after a lost runner moves a job backwards.
        if (job.Status == JobStatus.Queued) Retried.Add(1, template);
        if (before is JobStatus.Queued or JobStatus.Provisioning && job.Attempt == 1 && job.StartedAt is { } started)
        {
            QueueWait.Record(Seconds(started - job.CreatedAt), template);
        }
        if (job.Status.IsTerminal() && !before.IsTerminal())
        {
            Finished.Add(1, new KeyValuePair<string, object?>("outcome", job.Status.ToString().ToLowerInvariant()), template);
        }
    }

    public static void RunnerStarted(string template, string? backend, TimeSpan sinceReceipt) =>
        RunnerStart.Record(Seconds(sinceReceipt), new KeyValuePair<string, object?>("template", template), Backend(backend));

    public static void RunnerDestroyed(string template, string? backend, TimeSpan sinceJobEnd) =>
        Teardown.Record(Seconds(sinceJobEnd), new KeyValuePair<string, object?>("template", template), Backend(backend));

    // "unknown" from a provisioner older than the field, as the runner gauges say "none" for a row without one.
    private static KeyValuePair<string, object?> Backend(string? backend) => new("backend", backend ?? "unknown");

    private static double Seconds(TimeSpan t) => Math.Max(0, t.TotalSeconds);
}
