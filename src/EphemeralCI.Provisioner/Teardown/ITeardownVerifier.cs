using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;

namespace EphemeralCI.Provisioner.Teardown;

/// <summary>
/// Confirms, after a backend destroyed a runner, that nothing of it remains. Apart from the backend's
/// own teardown on purpose: it looks where the runner's things would be (the machine's /proc, /sys,
/// mount table and network; the Kubernetes API), not at what the teardown believes it removed.
/// </summary>
public interface ITeardownVerifier
{
    /// <summary>The backend whose runners it checks (<see cref="IRunnerBackend.Name"/>).</summary>
    string Backend { get; }

    /// <summary>
    /// Called before the teardown: the runner as the check must look for it. A backend may forget
    /// names at teardown (a warm sandbox handed to the job is known by its own id), so they are taken first.
    /// </summary>
    RunnerRef Target(RunnerRef runner) => runner;

    /// <summary>Every check, passed or not, with what it looked at and what it found.</summary>
    Task<IReadOnlyList<TeardownCheck>> VerifyAsync(RunnerRef target, CancellationToken ct);
}
