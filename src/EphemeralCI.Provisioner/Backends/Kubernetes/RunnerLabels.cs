using System.Text.RegularExpressions;
using EphemeralCI.RunnerTemplates;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>The names, labels and annotations that tie Kubernetes objects to EphemeralCI jobs.</summary>
public static partial class RunnerLabels
{
    public const string ManagedBy = "app.kubernetes.io/managed-by";
    public const string ManagedByValue = "ephemeralci";
    public const string Component = "app.kubernetes.io/component";
    public const string ComponentValue = "runner";
    public const string JobId = "ephemeralci.dev/job-id";
    public const string Template = "ephemeralci.dev/template";
    public const string RunnerId = "ephemeralci.dev/runner-id";
    public const string Deadline = "ephemeralci.dev/deadline";
    public const string MaxProcesses = "ephemeralci.dev/max-processes";
    public const string Instance = "ephemeralci.dev/instance";
    /// <summary>
    /// The runner's network mode (none, control-plane, egress), set from the template's <c>network</c>
    /// only; the runners namespace's NetworkPolicies select on it. Templates cannot set any
    /// <c>*.ephemeralci.dev/</c> label.
    /// </summary>
    public const string Network = "network.ephemeralci.dev/mode";

    /// <summary>Selects every object this backend created (and only those).</summary>
    public const string Selector = ManagedBy + "=" + ManagedByValue;

    public static string SelectorFor(Guid jobId) => $"{Selector},{JobId}={jobId}";

    /// <summary>Selects the objects of one provisioner instance (see <see cref="KubernetesOptions.Instance"/>): what its reconciler may reap.</summary>
    public static string SelectorOf(string instance) => $"{Selector},{Instance}={ToLabelValue(instance)}";

    /// <summary>The Job's name: short, DNS-safe and one per job, so a second create for the same job fails with 409 instead of making a second runner.</summary>
    public static string JobName(Guid jobId) => $"eci-{jobId:N}";

    public static string SecretName(Guid jobId) => $"eci-{jobId:N}-token";

    /// <summary>Whether an object is this instance's to reap: labelled with it, or with no instance at all (made before instances existed).</summary>
    public static bool BelongsTo(IDictionary<string, string>? labels, string instance) =>
        labels is null || !labels.TryGetValue(Instance, out var value) || value == ToLabelValue(instance);

    public static Guid? JobIdOf(IDictionary<string, string>? labels) =>
        labels is not null && labels.TryGetValue(JobId, out var value) && Guid.TryParse(value, out var id) ? id : null;

    /// <summary>A label value Kubernetes accepts (≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends), from any string.</summary>
    public static string ToLabelValue(string value)
    {
        var cleaned = InvalidValueChars().Replace(value, "-");
        if (cleaned.Length > 63) cleaned = cleaned[..63];
        return cleaned.Trim('-', '_', '.');
    }

    public static bool IsValidKey(string key)
    {
        var slash = key.LastIndexOf('/');
        var name = slash < 0 ? key : key[(slash + 1)..];
        var prefix = slash < 0 ? null : key[..slash];
        return name.Length is > 0 and <= 63 && ValidName().IsMatch(name)
            && (prefix is null || (prefix.Length <= 253 && ValidPrefix().IsMatch(prefix)));
    }

    public static bool IsValidValue(string value) => value.Length == 0 || (value.Length <= 63 && ValidName().IsMatch(value));

    /// <summary>Keys the backend owns; a template cannot set them (they select what gets deleted).</summary>
    public static bool IsReserved(string key) =>
        RunnerTemplateLoader.IsReservedLabel(key)
        || key.StartsWith("app.kubernetes.io/", StringComparison.Ordinal)
        || key is "job-name" or "controller-uid" || key.StartsWith("batch.kubernetes.io/", StringComparison.Ordinal);

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex InvalidValueChars();

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")]
    private static partial Regex ValidName();

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")]
    private static partial Regex ValidPrefix();
}
