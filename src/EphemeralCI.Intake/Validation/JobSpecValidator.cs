using System.Text.RegularExpressions;
using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.Intake.Validation;

/// <summary>
/// Checks an untrusted <see cref="JobSpec"/> and reports every bad field at once, keyed by its
/// JSON path (<c>steps[1].run</c>), in the shape of ValidationProblemDetails.errors. Pure: no I/O.
/// </summary>
public static partial class JobSpecValidator
{
    public const int MaxNameLength = 200;
    public const int MaxRepositoryLength = 200;
    public const int MaxRefLength = 255;
    public const int MaxTemplateNameLength = 63;
    public const int MaxEnvironmentLength = 63;
    public const int MaxSteps = 100;
    public const int MaxRunLength = 64 * 1024;
    public const int MaxEnvEntries = 100;
    public const int MaxEnvNameLength = 128;
    public const int MaxEnvValueLength = 32 * 1024;
    public const int MaxSecrets = 50;
    public const int MaxSecretNameLength = 128;
    public const int MaxCaches = 10;
    public const int MaxCacheKeyLength = 512;
    public const int MaxRestoreKeys = 10;
    public const int MaxCachePaths = 20;
    public const int MaxCachePathLength = 1024;
    /// <summary>Upper bound when the template is unknown (that case is reported separately, as 422).</summary>
    public const int AbsoluteMaxTimeoutSeconds = 7 * 24 * 3600;

    /// <summary>Environment names the runner sets for itself; a job may not shadow them.</summary>
    public const string ReservedEnvPrefix = "ECI_";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+$")]
    private static partial Regex RepositoryPattern();

    [GeneratedRegex(@"^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")]
    private static partial Regex CommitShaPattern();

    [GeneratedRegex(@"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")]
    private static partial Regex TemplateNamePattern();

    [GeneratedRegex(@"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")]
    private static partial Regex EnvironmentNamePattern();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex ShellIdentifierPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
    private static partial Regex SecretNamePattern();

    /// <param name="template">The named template when it exists; null leaves that check to the caller (422).</param>
    public static Dictionary<string, string[]> Validate(JobSpec spec, RunnerTemplateDefinition? template)
    {
        var errors = new Errors();

        if (spec.Name is not null)
        {
            if (spec.Name.Length > MaxNameLength) errors.Add("name", $"must be at most {MaxNameLength} characters");
            if (HasControlCharacters(spec.Name)) errors.Add("name", "must not contain control characters");
        }

        if (string.IsNullOrWhiteSpace(spec.Repository)) errors.Add("repository", "is required");
        else if (spec.Repository.Length > MaxRepositoryLength) errors.Add("repository", $"must be at most {MaxRepositoryLength} characters");
        else if (!RepositoryPattern().IsMatch(spec.Repository) || spec.Repository.Contains(".."))
            errors.Add("repository", "must look like owner/name (letters, digits, '.', '_', '-')");

        ValidateRef(spec.Ref, errors);

        if (string.IsNullOrWhiteSpace(spec.CommitSha)) errors.Add("commitSha", "is required");
        else if (!CommitShaPattern().IsMatch(spec.CommitSha)) errors.Add("commitSha", "must be 40 (SHA-1) or 64 (SHA-256) hexadecimal characters");

        if (string.IsNullOrWhiteSpace(spec.RunnerTemplate)) errors.Add("runnerTemplate", "is required");
        else if (spec.RunnerTemplate.Length > MaxTemplateNameLength || !TemplateNamePattern().IsMatch(spec.RunnerTemplate))
            errors.Add("runnerTemplate", $"must be at most {MaxTemplateNameLength} lowercase letters, digits, '.', '_' or '-'");

        if (spec.Environment is not null
            && (spec.Environment.Length is 0 or > MaxEnvironmentLength || !EnvironmentNamePattern().IsMatch(spec.Environment)))
        {
            errors.Add("environment", $"must be 1 to {MaxEnvironmentLength} letters, digits, '.', '_' or '-' (starting and ending with a letter or digit)");
        }

        if (spec.Session is null) ValidateSteps(spec.Steps, errors);
        else ValidateSession(spec, errors);
        ValidateEnv("env", spec.Env, errors);

        if (spec.TimeoutSeconds is { } timeout)
        {
            var max = template?.MaxTimeoutSeconds ?? AbsoluteMaxTimeoutSeconds;
            if (timeout < 1) errors.Add("timeoutSeconds", "must be at least 1");
            else if (timeout > max)
                errors.Add("timeoutSeconds", template is null
                    ? $"must be at most {max}"
                    : $"must be at most {max}, the maximum of runner template '{spec.RunnerTemplate}'");
        }

        ValidateSecrets(spec.Secrets, errors);
        ValidateCaches(spec.Caches, errors);
        ValidateCheckout(spec.Checkout, errors);
        if (spec.Retry?.Infrastructure is { } retries && retries is < 0 or > RetrySpec.MaxInfrastructure)
        {
            errors.Add("retry.infrastructure", $"must be 0 to {RetrySpec.MaxInfrastructure} (how many times a job whose runner was lost starts again)");
        }

        return errors.ToDictionary();
    }

    /// <summary>True for a repository name as <see cref="Validate"/> accepts it (owner/name, no glob characters).</summary>
    public static bool IsRepository(string? repository) =>
        !string.IsNullOrEmpty(repository) && repository.Length <= MaxRepositoryLength && RepositoryPattern().IsMatch(repository) && !repository.Contains("..");

    /// <summary>True for a ref as <see cref="Validate"/> accepts it (no glob characters).</summary>
    public static bool IsRef(string? gitRef)
    {
        var errors = new Errors();
        ValidateRef(gitRef, errors);
        return errors.IsEmpty;
    }

    private static void ValidateRef(string? gitRef, Errors errors)
    {
        if (string.IsNullOrWhiteSpace(gitRef)) { errors.Add("ref", "is required"); return; }
        if (gitRef.Length > MaxRefLength) errors.Add("ref", $"must be at most {MaxRefLength} characters");
        // The parts of git-check-ref-format that matter for us: nothing a shell or git would misread.
        if (gitRef.Any(c => char.IsControl(c) || char.IsWhiteSpace(c) || c is '~' or '^' or ':' or '?' or '*' or '[' or '\\')
            || gitRef.Contains("..") || gitRef.StartsWith('-') || gitRef.StartsWith('/') || gitRef.EndsWith('/') || gitRef.EndsWith(".lock"))
        {
            errors.Add("ref", "is not a valid git ref name");
        }
    }

    // A session's steps are its commands, appended one at a time (each checked like a step when it arrives).
    private static void ValidateSession(JobSpec spec, Errors errors)
    {
        if (spec.Steps is { Count: > 0 }) errors.Add("steps", "must be empty for a session: send each command to /api/v1/sessions/{id}/commands");
        if (spec.Session!.IdleTimeoutSeconds is { } idle && idle is < SessionSpec.MinIdleTimeoutSeconds or > SessionSpec.MaxIdleTimeoutSeconds)
            errors.Add("session.idleTimeoutSeconds", $"must be {SessionSpec.MinIdleTimeoutSeconds} to {SessionSpec.MaxIdleTimeoutSeconds} seconds");
        // A new runner would not have the state the earlier commands left: a lost session's runner ends it.
        if (spec.Retry?.Infrastructure is > 0) errors.Add("retry.infrastructure", "must be 0 for a session (a new runner would not hold its state)");
    }

    /// <summary>Errors of one command sent to a session, named like the command's fields (<c>run</c>, <c>env</c>).</summary>
    public static Dictionary<string, string[]> ValidateCommand(StepSpec command)
    {
        var errors = new Errors();
        ValidateSteps([command], errors);
        return errors.ToDictionary().ToDictionary(e => e.Key.Replace("steps[0].", "", StringComparison.Ordinal), e => e.Value);
    }

    private static void ValidateSteps(IReadOnlyList<StepSpec>? steps, Errors errors)
    {
        if (steps is null || steps.Count == 0) { errors.Add("steps", "must contain at least one step"); return; }
        if (steps.Count > MaxSteps) { errors.Add("steps", $"must contain at most {MaxSteps} steps"); return; }
        for (var i = 0; i < steps.Count; i++)
        {
            var path = $"steps[{i}]";
            var step = steps[i];
            if (step is null) { errors.Add(path, "must not be null"); continue; }
            if (step.Name is not null)
            {
                if (step.Name.Length > MaxNameLength) errors.Add($"{path}.name", $"must be at most {MaxNameLength} characters");
                if (HasControlCharacters(step.Name)) errors.Add($"{path}.name", "must not contain control characters");
            }
            if (string.IsNullOrWhiteSpace(step.Run)) errors.Add($"{path}.run", "is required");
            else if (step.Run.Length > MaxRunLength) errors.Add($"{path}.run", $"must be at most {MaxRunLength} characters");
            else if (step.Run.Contains('\0')) errors.Add($"{path}.run", "must not contain NUL characters");
            ValidateEnv($"{path}.env", step.Env, errors);
        }
    }

    private static void ValidateEnv(string path, IReadOnlyDictionary<string, string>? env, Errors errors)
    {
        if (env is null) return;
        if (env.Count > MaxEnvEntries) { errors.Add(path, $"must contain at most {MaxEnvEntries} variables"); return; }
        foreach (var (name, value) in env)
        {
            var entry = $"{path}.{name}";
            if (name.Length > MaxEnvNameLength) errors.Add(entry, $"name must be at most {MaxEnvNameLength} characters");
            else if (!ShellIdentifierPattern().IsMatch(name)) errors.Add(entry, "name must be a shell identifier ([A-Za-z_][A-Za-z0-9_]*)");
            else if (name.StartsWith(ReservedEnvPrefix, StringComparison.Ordinal)) errors.Add(entry, $"names starting with {ReservedEnvPrefix} are reserved for the runner");
            if (value is null) errors.Add(entry, "value must not be null");
            else if (value.Length > MaxEnvValueLength) errors.Add(entry, $"value must be at most {MaxEnvValueLength} characters");
            else if (value.Contains('\0')) errors.Add(entry, "value must not contain NUL characters");
        }
    }

    private static void ValidateSecrets(IReadOnlyList<string>? secrets, Errors errors)
    {
        if (secrets is null) return;
        if (secrets.Count > MaxSecrets) { errors.Add("secrets", $"must contain at most {MaxSecrets} names"); return; }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < secrets.Count; i++)
        {
            var name = secrets[i];
            var path = $"secrets[{i}]";
            if (string.IsNullOrEmpty(name)) errors.Add(path, "is required");
            else if (name.Length > MaxSecretNameLength || !SecretNamePattern().IsMatch(name))
                errors.Add(path, $"must be at most {MaxSecretNameLength} letters, digits, '_', '.' or '-'");
            else if (!seen.Add(name)) errors.Add(path, $"'{name}' is listed twice");
        }
    }

    private static void ValidateCaches(IReadOnlyList<CacheSpec>? caches, Errors errors)
    {
        if (caches is null) return;
        if (caches.Count > MaxCaches) { errors.Add("caches", $"must contain at most {MaxCaches} caches"); return; }
        for (var i = 0; i < caches.Count; i++)
        {
            var path = $"caches[{i}]";
            var cache = caches[i];
            if (cache is null) { errors.Add(path, "must not be null"); continue; }
            ValidateCacheKey($"{path}.key", cache.Key, required: true, errors);
            if (cache.RestoreKeys is { } restoreKeys)
            {
                if (restoreKeys.Count > MaxRestoreKeys) errors.Add($"{path}.restoreKeys", $"must contain at most {MaxRestoreKeys} keys");
                else for (var k = 0; k < restoreKeys.Count; k++) ValidateCacheKey($"{path}.restoreKeys[{k}]", restoreKeys[k], required: true, errors);
            }
            if (cache.Paths is null || cache.Paths.Count == 0) errors.Add($"{path}.paths", "must contain at least one path");
            else if (cache.Paths.Count > MaxCachePaths) errors.Add($"{path}.paths", $"must contain at most {MaxCachePaths} paths");
            else for (var p = 0; p < cache.Paths.Count; p++)
            {
                var cachePath = cache.Paths[p];
                var entry = $"{path}.paths[{p}]";
                if (string.IsNullOrWhiteSpace(cachePath)) errors.Add(entry, "is required");
                else if (cachePath.Length > MaxCachePathLength) errors.Add(entry, $"must be at most {MaxCachePathLength} characters");
                else if (HasControlCharacters(cachePath)) errors.Add(entry, "must not contain control characters");
                else if (cachePath.Split('/').Contains("..")) errors.Add(entry, "must not contain '..' segments");
            }
        }
    }

    /// <summary>Largest <c>checkout.depth</c> (beyond it, ask for the full history with 0).</summary>
    public const int MaxCheckoutDepth = 100_000;
    public const int MaxCheckoutPathLength = 256;

    private static void ValidateCheckout(CheckoutSpec? checkout, Errors errors)
    {
        if (checkout is null || !checkout.Enabled) return;
        if (checkout.Depth is { } depth && (depth < 0 || depth > MaxCheckoutDepth))
        {
            errors.Add("checkout.depth", $"must be 0 (the full history) to {MaxCheckoutDepth}");
        }
        if (checkout.Submodules is { } submodules && submodules is not ("false" or "true" or "recursive"))
        {
            errors.Add("checkout.submodules", "must be false, true or \"recursive\"");
        }
        if (checkout.Path is { } path)
        {
            if (string.IsNullOrWhiteSpace(path)) errors.Add("checkout.path", "must not be empty (leave it out to check out into the workspace itself)");
            else if (path.Length > MaxCheckoutPathLength) errors.Add("checkout.path", $"must be at most {MaxCheckoutPathLength} characters");
            else if (HasControlCharacters(path) || path.Contains('\\')) errors.Add("checkout.path", "must not contain control characters or backslashes");
            else if (path.StartsWith('/')) errors.Add("checkout.path", "must be relative to the workspace");
            else if (path.Split('/').Any(s => s is ".." or "." || s.Equals(".git", StringComparison.OrdinalIgnoreCase))) errors.Add("checkout.path", "must not contain '.', '..' or '.git' segments");
        }
    }

    private static void ValidateCacheKey(string path, string? key, bool required, Errors errors)
    {
        if (string.IsNullOrWhiteSpace(key)) { if (required) errors.Add(path, "is required"); return; }
        if (key.Length > MaxCacheKeyLength) errors.Add(path, $"must be at most {MaxCacheKeyLength} characters");
        else if (HasControlCharacters(key)) errors.Add(path, "must not contain control characters");
    }

    private static bool HasControlCharacters(string value) => value.Any(char.IsControl);

    private sealed class Errors
    {
        private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

        public void Add(string field, string message)
        {
            if (!_errors.TryGetValue(field, out var list)) _errors[field] = list = [];
            list.Add(message);
        }

        public bool IsEmpty => _errors.Count == 0;

        public Dictionary<string, string[]> ToDictionary() =>
            _errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }
}
