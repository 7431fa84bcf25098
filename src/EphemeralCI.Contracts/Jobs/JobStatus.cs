namespace EphemeralCI.Contracts.Jobs;

/// <summary>queued → provisioning → running → one of the terminal states.</summary>
public enum JobStatus
{
    Queued,
    Provisioning,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

public static class JobStatusExtensions
{
    public static bool IsTerminal(this JobStatus status) =>
        status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled or JobStatus.TimedOut;
}
