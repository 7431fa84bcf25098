using System.Globalization;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// What the backend knows of one runner pod: the stages already reported, how long it has been
/// stuck, and how it ended. Pure state with the time passed in, so the grace-period rules are
/// unit-tested without a clock; the pod watcher feeds it.
/// </summary>
public sealed class RunnerTracker(Guid jobId, DateTimeOffset createdAt)
{
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private PodStage _reported = PodStage.Created;
    private bool _podSeen;
    private PendingProblem? _problem;
    private DateTimeOffset? _problemSince;
    private RunnerFailure? _failure;
    private bool _scaleUpTriggered;
    public const string OomKilled = "OOMKilled";
    /// <summary>The scheduler's reason for a pod no node can take (yet).</summary>
    public const string Unschedulable = "Unschedulable";

    public Guid JobId { get; } = jobId;

    /// <summary>Completes with the agent's exit code (or -1 when the backend ended the runner; see <see cref="Failure"/>).</summary>
    public Task<int> Exited => _exited.Task;

    public RunnerFailure? Failure { get { lock (_gate) return _failure; } }

    public bool IsFinished => _exited.Task.IsCompleted;

    /// <summary>Takes in one look at the pod; returns the progress to report (stage, detail), in order.</summary>
    public IReadOnlyList<(string Stage, string? Detail)> Observe(PodObservation pod, DateTimeOffset now)
    {
        var progress = new List<(string, string?)>();
        lock (_gate)
        {
            if (IsFinished) return progress;
            _podSeen = true;
            // Stages only move forward; a later one implies the earlier ones (a missed event loses nothing).
            for (var stage = _reported + 1; stage <= pod.Stage; stage++)
            {
                progress.Add((PodObservation.StageName(stage), stage == PodStage.Exited ? DescribeExit(pod) : null));
            }
            if (pod.Stage > _reported) _reported = pod.Stage;

            if (pod.Problem is { } problem)
            {
                if (_problem?.Reason != problem.Reason) progress.Add(("waiting", problem.Description));
                _problemSince ??= now;
                _problem = problem;
            }
            else
            {
                _problem = null;
                _problemSince = null;
            }

            if (pod.Finished)
            {
                var failure = pod.TerminationReason switch
                {
                    "DeadlineExceeded" => new RunnerFailure(RunnerOutcome.TimedOut, "Kubernetes stopped the runner at its activeDeadlineSeconds (DeadlineExceeded)"),
                    "Evicted" => new RunnerFailure(RunnerOutcome.Lost, "the runner pod was evicted by Kubernetes (Evicted)"),
                    // The kernel's OOM kill is a SIGKILL (137) like a kill from outside, but it is the job's own doing.
                    OomKilled => new RunnerFailure(RunnerOutcome.LimitExceeded, "the job ran out of memory: Kubernetes killed the runner at its memory limit (OOMKilled)"),
                    _ when pod.ExitCode is null => new RunnerFailure(RunnerOutcome.Lost, $"the runner pod failed without an exit code ({pod.TerminationReason ?? "no reason given"})"),
                    _ => null,
                };
                Complete(pod.ExitCode ?? -1, failure);
            }
        }
        return progress;
    }

    /// <summary>
    /// The cluster autoscaler (or Karpenter) is adding a node for this pod: being unschedulable is then
    /// expected for minutes, and the job waits up to the scale-up grace period instead. Returns true
    /// the first time (worth a timeline entry).
    /// </summary>
    public bool ScaleUpTriggered()
    {
        lock (_gate)
        {
            if (IsFinished || _scaleUpTriggered) return false;
            _scaleUpTriggered = true;
            return true;
        }
    }

    /// <summary>Fails the runner if it has been stuck (or podless) for the grace period. Returns the failure when it did.</summary>
    public RunnerFailure? CheckGrace(DateTimeOffset now, TimeSpan grace, TimeSpan? scaleUpGrace = null)
    {
        lock (_gate)
        {
            if (IsFinished) return null;
            if (_scaleUpTriggered && _problem?.Reason == Unschedulable && scaleUpGrace is { } longer && longer > grace) grace = longer;
            var seconds = grace.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            RunnerFailure? failure = null;
            if (_problem is not null && _problemSince is { } since && now - since >= grace)
            {
                failure = new RunnerFailure(RunnerOutcome.FailedToStart, $"{_problem.Description}; still so after the grace period of {seconds} s");
            }
            else if (!_podSeen && now - createdAt >= grace)
            {
                failure = new RunnerFailure(RunnerOutcome.FailedToStart, $"Kubernetes created no pod for the runner Job within the grace period of {seconds} s");
            }
            if (failure is not null) Complete(-1, failure);
            return failure;
        }
    }

    /// <summary>The pod vanished before it finished (deleted by someone else, node lost).</summary>
    public void PodDeleted(string podName)
    {
        lock (_gate)
        {
            if (!IsFinished) Complete(-1, new RunnerFailure(RunnerOutcome.Lost, $"the runner pod {podName} was deleted before it finished"));
        }
    }

    /// <summary>Ends the runner for a reason of the provisioner's own (kill, shutdown). No effect if it already ended.</summary>
    public void Abandon(RunnerFailure failure)
    {
        lock (_gate)
        {
            if (!IsFinished) Complete(-1, failure);
        }
    }

    private void Complete(int exitCode, RunnerFailure? failure)
    {
        _failure = failure;
        _exited.TrySetResult(exitCode);
    }

    private static string DescribeExit(PodObservation pod) =>
        (pod.ExitCode is { } code ? $"exit code {code}" : "no exit code") + (pod.TerminationReason is { } r ? $" ({r})" : "");
}
