using EphemeralCI.Contracts.Jobs;
using Microsoft.AspNetCore.DataProtection;

namespace EphemeralCI.Intake.Services;

/// <summary>
/// The values of a spec's <c>maskedEnv</c> variables (credentials such as a GitHub runner's JIT config) are stored
/// sealed with the intake's data-protection key ring (Infrastructure/DataProtection) and opened only for the runner
/// that fetches its job. Nothing else reads them: the jobs API, the web UI and the attestation show no env at all.
/// Rows stored before sealing hold plain values (no prefix) and are handed over as they are.
/// </summary>
public sealed class JobSpecSeal(IDataProtectionProvider provider)
{
    public const string Purpose = "EphemeralCI.Intake.JobSpec.MaskedEnv.v1";
    public const string Prefix = "eci-sealed:v1:";
    private readonly IDataProtector _protector = provider.CreateProtector(Purpose);

    public JobSpec Seal(JobSpec spec) => Map(spec, Protect);

    public JobSpec Unseal(JobSpec spec) => Map(spec, Unprotect);

    /// <summary>A session's command, sealed under the session's <c>maskedEnv</c>.</summary>
    public StepSpec Seal(StepSpec step, IReadOnlyList<string>? maskedEnv) => Map(step, maskedEnv, Protect);

    public IReadOnlyList<StepSpec> Unseal(IEnumerable<StepSpec> steps, IReadOnlyList<string>? maskedEnv) => [.. steps.Select(s => Map(s, maskedEnv, Unprotect))];

    private string Protect(string value) => Prefix + _protector.Protect(value);

    private string Unprotect(string value) => value.StartsWith(Prefix, StringComparison.Ordinal) ? _protector.Unprotect(value[Prefix.Length..]) : value;

    private static JobSpec Map(JobSpec spec, Func<string, string> f) => spec.MaskedEnv is not { Count: > 0 } names ? spec : spec with
    {
        Env = Map(spec.Env, names, f),
        Steps = spec.Steps?.Select(s => Map(s, names, f)).ToList(),
    };

    private static StepSpec Map(StepSpec step, IReadOnlyList<string>? names, Func<string, string> f) =>
        names is not { Count: > 0 } || step.Env is null ? step : step with { Env = Map(step.Env, names, f) };

    private static Dictionary<string, string>? Map(IReadOnlyDictionary<string, string>? env, IReadOnlyList<string> names, Func<string, string> f) =>
        env?.ToDictionary(kv => kv.Key, kv => names.Contains(kv.Key, StringComparer.Ordinal) ? f(kv.Value) : kv.Value, StringComparer.Ordinal);
}
