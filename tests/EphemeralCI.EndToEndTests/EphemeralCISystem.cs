namespace EphemeralCI.EndToEndTests;

/// <summary>
/// A running EphemeralCI as a CI system and an administrator see it, whichever way it was started:
/// the AppHost's services (<see cref="AppHostFixture"/>) or the all-in-one server (<see cref="ServerFixture"/>).
/// The same tests run against both.
/// </summary>
public interface IEphemeralCISystem
{
    /// <summary>The intake API, with an admin API key.</summary>
    HttpClient Intake { get; }

    /// <summary>The secrets broker's admin API, with its admin token.</summary>
    HttpClient SecretsAdmin { get; }

    /// <summary>Where the provisioner puts each runner's workspace and control socket.</summary>
    string RunnerWorkRoot { get; }
}
