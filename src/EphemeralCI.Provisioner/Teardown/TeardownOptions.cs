namespace EphemeralCI.Provisioner.Teardown;

/// <summary>The <c>Provisioner:Teardown</c> section.</summary>
public sealed class TeardownOptions
{
    public const string Section = "Provisioner:Teardown";

    /// <summary>Run the teardown check after every runner (default). Off only for measuring its cost: runners are then reported destroyed unverified, and get no attestation.</summary>
    public bool Verify { get; set; } = true;

    /// <summary>How many times cleanup runs when the check keeps finding something (the first included).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Pause before cleanup runs again (grows with each attempt): a pod's deletion or a process's exit may still be under way.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);
}
