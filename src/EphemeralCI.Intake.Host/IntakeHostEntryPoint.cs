namespace EphemeralCI.Intake.Host;

/// <summary>
/// Names this host's assembly for <c>WebApplicationFactory&lt;IntakeHostEntryPoint&gt;</c>. Not
/// <c>public partial class Program</c>: every host has a global <c>Program</c>, and a test project
/// that references several hosts could not tell them apart.
/// </summary>
public sealed class IntakeHostEntryPoint;
