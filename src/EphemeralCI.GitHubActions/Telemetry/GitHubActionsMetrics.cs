using System.Diagnostics.Metrics;

namespace EphemeralCI.GitHubActions.Telemetry;

/// <summary>The adapter's counters (meter <c>EphemeralCI.GitHubActions</c>).</summary>
public sealed class GitHubActionsMetrics
{
    public const string MeterName = "EphemeralCI.GitHubActions";
    public const string NotAllowedName = "eci.github_actions.workflow_jobs.not_allowed";
    private readonly Counter<long> _notAllowed;

    public GitHubActionsMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _notAllowed = meter.CreateCounter<long>(NotAllowedName, unit: "{workflow_job}",
            description: "Queued workflow jobs given no runner because their repository is not on the allow-list of the template their labels pick (once per workflow job)");
    }

    public void NotAllowed(string template) => _notAllowed.Add(1, new KeyValuePair<string, object?>("template", template));
}
