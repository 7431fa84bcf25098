namespace EphemeralCI.Intake.Model;

/// <summary>
/// One template's warm pool on one provisioner instance, as that instance last reported it (<c>WarmPoolReport</c>):
/// one row per instance and template, replaced by each newer report.
/// </summary>
public sealed class ReportedWarmPool
{
    public required string Instance { get; set; }
    public required string Template { get; set; }
    public required string Backend { get; set; }
    public int Target { get; set; }
    public int Ready { get; set; }
    /// <summary>When the instance read its pools (its clock): shown as "as of", and orders its reports.</summary>
    public DateTimeOffset ReportedAt { get; set; }
    /// <summary>
    /// Until when the row counts (this intake's clock: receipt plus three of the instance's intervals), so a
    /// provisioner whose clock is off, or that stopped, is judged by when its reports arrive, not by what it says.
    /// </summary>
    public DateTimeOffset FreshUntil { get; set; }

    /// <summary>Rows not fresh for this long are deleted when a report comes in: the table holds about the last hour.</summary>
    public static readonly TimeSpan KeptAfterStale = TimeSpan.FromHours(1);
}
