namespace EphemeralCI.RunnerAgent;

/// <summary>
/// The job's W3C trace context, which the intake returns with the job (it kept the submission's):
/// the agent sends it on every later call to the control plane — its reports to the intake, the
/// secrets exchange, the cache calls and the steps' cache traffic — so the services' spans for them
/// join the job's one trace. The agent makes no spans of its own (a sandbox has no collector to send
/// them to). A value that is not a well-formed traceparent is not sent on.
/// </summary>
public static class AgentTrace
{
    public const string Header = "traceparent";

    /// <summary>Adds the job's trace context to every request <paramref name="http"/> sends from now on.</summary>
    public static void Join(HttpClient? http, string? traceParent)
    {
        if (http is not null && IsTraceParent(traceParent)) http.DefaultRequestHeaders.TryAddWithoutValidation(Header, traceParent);
    }

    /// <summary>"00-" + 32 hex + "-" + 16 hex + "-" + 2 hex, lower case: anything else is not sent on.</summary>
    public static bool IsTraceParent(string? value) =>
        value is { Length: 55 } && value.StartsWith("00-", StringComparison.Ordinal) && value[35] == '-' && value[52] == '-' &&
        value.Remove(52, 1).Remove(35, 1).AsSpan(3).IndexOfAnyExcept("0123456789abcdef") < 0;
}
