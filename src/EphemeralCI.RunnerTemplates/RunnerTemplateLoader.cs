using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.Configuration;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EphemeralCI.RunnerTemplates;

/// <summary>A template and the SHA-256 of its definition, so a job can record exactly what it ran in.</summary>
public sealed record LoadedTemplate(string Name, RunnerTemplateDefinition Definition, string ContentHash, string Source);

/// <summary>
/// Loads runner templates from the <c>RunnerTemplates</c> configuration section (child key = name)
/// and from YAML files in <c>RunnerTemplates:Directory</c> (file name without extension = name),
/// e.g. a directory a platform team keeps in git. A name defined twice, an unknown key or a bad
/// value stops start-up with the file or setting named.
/// </summary>
public static class RunnerTemplateLoader
{
    /// <summary><c>RunnerTemplates:Directory</c>: the folder of <c>*.yaml</c>/<c>*.yml</c> template files (optional).</summary>
    public const string DirectoryKey = "Directory";

    /// <summary>
    /// <c>RunnerTemplates:Files:&lt;name&gt;</c>: a template file's text in a setting (hashed as that file), for hosts
    /// that get configuration but no files, e.g. the AppHost published by azd (label keys such as
    /// <c>example.com/team</c> cannot be setting names there).
    /// </summary>
    public const string FilesKey = "Files";

    /// <summary>Warm runners hold memory (an idle agent) and a cgroup each: a template asks for a handful, not a fleet.</summary>
    public const int MaxWarmPool = 32;
    public static readonly IReadOnlyList<string> NetworkModes = ["none", "control-plane", "egress"];

    private static readonly IDeserializer Yaml = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .Build(); // unknown keys throw: a typo must not silently widen or drop a limit

    public static IReadOnlyDictionary<string, LoadedTemplate> Load(IConfiguration configuration, string? baseDirectory = null)
    {
        var templates = new Dictionary<string, LoadedTemplate>(StringComparer.Ordinal);
        var section = configuration.GetSection(RunnerTemplateDefinition.Section);
        foreach (var child in section.GetChildren())
        {
            if (child.Key is DirectoryKey) continue;
            if (child.Key is FilesKey)
            {
                foreach (var file in child.GetChildren())
                {
                    var loaded = Parse(file.Key, file.Value ?? "", $"configuration setting '{RunnerTemplateDefinition.Section}:{FilesKey}:{file.Key}'");
                    if (!templates.TryAdd(file.Key, loaded))
                    {
                        throw new InvalidOperationException($"Runner template '{file.Key}' is defined twice: in {loaded.Source} and in {templates[file.Key].Source}.");
                    }
                }
                continue;
            }
            if (templates.ContainsKey(child.Key))
            {
                throw new InvalidOperationException($"Runner template '{child.Key}' is defined twice: in configuration setting '{RunnerTemplateDefinition.Section}:{child.Key}' and in {templates[child.Key].Source}.");
            }
            var definition = new RunnerTemplateDefinition();
            child.Bind(definition);
            var source = $"configuration setting '{RunnerTemplateDefinition.Section}:{child.Key}'";
            ValidateSetting(definition, child.Key);
            templates[child.Key] = new LoadedTemplate(child.Key, definition, HashOf(definition), source);
        }

        if (section[DirectoryKey] is { Length: > 0 } directory)
        {
            // Relative to the working directory (the content root of a host), like other file settings.
            var path = Path.GetFullPath(directory, baseDirectory ?? Directory.GetCurrentDirectory());
            foreach (var file in LoadDirectory(path))
            {
                if (templates.TryGetValue(file.Name, out var other))
                {
                    throw new InvalidOperationException($"Runner template '{file.Name}' is defined twice: in {file.Source} and in {other.Source}.");
                }
                templates[file.Name] = file;
            }
        }
        return templates;
    }

    public static IReadOnlyList<LoadedTemplate> LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new InvalidOperationException($"Configuration setting '{RunnerTemplateDefinition.Section}:{DirectoryKey}' names '{directory}', which does not exist.");
        }
        return Directory.EnumerateFiles(directory)
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(f => Parse(Path.GetFileNameWithoutExtension(f), File.ReadAllText(f), f))
            .ToList();
    }

    /// <summary>Parses one template file's text. The hash is of the canonical text (LF line ends, no BOM), so a checkout on Windows hashes the same.</summary>
    public static LoadedTemplate Parse(string name, string content, string source)
    {
        var canonical = Canonical(content);
        RunnerTemplateDefinition definition;
        try
        {
            definition = Yaml.Deserialize<RunnerTemplateDefinition?>(canonical) ?? new RunnerTemplateDefinition();
        }
        catch (YamlException ex)
        {
            throw new InvalidOperationException($"Runner template file '{source}' is invalid at line {ex.Start.Line}: {(ex.InnerException ?? ex).Message}", ex);
        }
        definition.Resources ??= new RunnerResources();
        definition.Labels ??= [];
        definition.Sandbox ??= new RunnerSandboxSettings();
        definition.Kubernetes ??= new RunnerKubernetesSettings();
        ValidateFile(definition, source);
        return new LoadedTemplate(name, definition, Sha256(canonical), source);
    }

    public static string Canonical(string content) => content.TrimStart('\uFEFF').Replace("\r\n", "\n", StringComparison.Ordinal);

    /// <summary>A configuration-section template has no file: its hash is of its canonical JSON form.</summary>
    /// <remarks>A relaxation is hashed only when set, so the hash of every template without one stays what it was.</remarks>
    public static string HashOf(RunnerTemplateDefinition definition) => Sha256(JsonSerializer.Serialize(new
    {
        definition.Backend, definition.DefaultTimeoutSeconds, definition.MaxTimeoutSeconds, definition.Image, definition.RootFilesystem,
        definition.Resources.CpuMillis, definition.Resources.MemoryMiB, definition.Resources.MaxProcesses,
        definition.Network, definition.RunAsUser,
        Labels = definition.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).ToList(),
    }) + string.Concat(definition.Relaxations().Select(r => "\n" + r))
       + (definition.Resources.EphemeralStorageMiB == new RunnerResources().EphemeralStorageMiB ? "" : $"\nephemeralStorageMiB={definition.Resources.EphemeralStorageMiB}")
       + (definition.Kubernetes?.IsSet() == true ? "\n" + JsonSerializer.Serialize(definition.Kubernetes) : ""));

    private static string Sha256(string text) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>The first invalid property (its configuration name, e.g. "Resources:MemoryMiB") and why, or null.</summary>
    public static (string Property, string Problem)? Check(RunnerTemplateDefinition d) =>
        string.IsNullOrWhiteSpace(d.Backend) ? ("Backend", "must not be empty") :
        d.MaxTimeoutSeconds <= 0 ? ("MaxTimeoutSeconds", "must be positive") :
        d.DefaultTimeoutSeconds <= 0 || d.DefaultTimeoutSeconds > d.MaxTimeoutSeconds ? ("DefaultTimeoutSeconds", $"must be between 1 and MaxTimeoutSeconds ({d.MaxTimeoutSeconds})") :
        d.Resources.CpuMillis <= 0 ? ("Resources:CpuMillis", "must be positive") :
        d.Resources.MemoryMiB <= 0 ? ("Resources:MemoryMiB", "must be positive") :
        d.Resources.MaxProcesses <= 0 ? ("Resources:MaxProcesses", "must be positive") :
        !NetworkModes.Contains(d.Network) ? ("Network", $"must be one of {string.Join(", ", NetworkModes)}") :
        d.Network == "none" && d.Backend == "kubernetes" ? ("Network", "cannot be none on the kubernetes backend: the agent shares the pod's network with the steps and must reach the control plane; use control-plane") :
        d.RunAsUser <= 0 ? ("RunAsUser", "must be an unprivileged user (not 0)") :
        d.WarmPool is < 0 or > MaxWarmPool ? ("WarmPool", $"must be between 0 and {MaxWarmPool}") :
        d.WarmPool > 0 && d.Backend != "local" ? ("WarmPool", "is supported by the local backend only (a warm pod would hold cluster resources outside any job)") :
        d.Sandbox?.AllowUserNamespaces == true && d.Backend != "local" ? ("Sandbox:AllowUserNamespaces", "is supported by the local backend only (a pod's user namespaces are the cluster's Pod Security settings)") :
        d.Resources.EphemeralStorageMiB <= 0 ? ("Resources:EphemeralStorageMiB", "must be positive") :
        d.Labels?.Keys.FirstOrDefault(IsReservedLabel) is { } reserved ? ($"Labels:{reserved}", "is reserved: EphemeralCI sets its own labels (the network label follows `network`)") :
        d.Kubernetes?.IsSet() == true && d.Backend != "kubernetes" ? ("Kubernetes", "is supported by the kubernetes backend only") :
        d.Kubernetes is { } k ? CheckKubernetes(k) :
        null;

    /// <summary>Label keys the backends own: they select what is deleted and which network a runner gets.</summary>
    public static bool IsReservedLabel(string key) =>
        key.StartsWith("ephemeralci.dev/", StringComparison.Ordinal) || key.Contains(".ephemeralci.dev/", StringComparison.Ordinal);

    private static readonly string[] TolerationOperators = ["Equal", "Exists"];
    private static readonly string[] TolerationEffects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    private static readonly string[] NodeOperators = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];

    private static (string, string)? CheckKubernetes(RunnerKubernetesSettings k)
    {
        for (var i = 0; i < k.Tolerations.Count; i++)
        {
            var t = k.Tolerations[i];
            if (!TolerationOperators.Contains(t.Operator)) return ($"Kubernetes:Tolerations:{i}:Operator", "must be Equal or Exists");
            if (t.Effect is not null && !TolerationEffects.Contains(t.Effect)) return ($"Kubernetes:Tolerations:{i}:Effect", $"must be one of {string.Join(", ", TolerationEffects)}");
            if (t.Operator == "Exists" && !string.IsNullOrEmpty(t.Value)) return ($"Kubernetes:Tolerations:{i}:Value", "must be empty when the operator is Exists");
        }
        for (var i = 0; i < k.RequiredNodeAffinity.Count; i++)
        {
            var r = k.RequiredNodeAffinity[i];
            if (string.IsNullOrWhiteSpace(r.Key)) return ($"Kubernetes:RequiredNodeAffinity:{i}:Key", "must not be empty");
            if (!NodeOperators.Contains(r.Operator)) return ($"Kubernetes:RequiredNodeAffinity:{i}:Operator", $"must be one of {string.Join(", ", NodeOperators)}");
            var needsValues = r.Operator is "In" or "NotIn" or "Gt" or "Lt";
            if (needsValues != (r.Values.Count > 0)) return ($"Kubernetes:RequiredNodeAffinity:{i}:Values", needsValues ? $"must not be empty for {r.Operator}" : $"must be empty for {r.Operator}");
        }
        foreach (var (property, name) in new[] { ("RuntimeClassName", k.RuntimeClassName), ("PriorityClassName", k.PriorityClassName), ("ServiceAccountName", k.ServiceAccountName) }
                     .Concat(k.ImagePullSecrets.Select((n, i) => ($"ImagePullSecrets:{i}", (string?)n))))
        {
            if (name is not null && !IsDnsSubdomain(name)) return ($"Kubernetes:{property}", "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')");
        }
        return null;
    }

    private static bool IsDnsSubdomain(string name) =>
        name.Length is > 0 and <= 253 && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '.')
        && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1]);

    private static void ValidateSetting(RunnerTemplateDefinition d, string name)
    {
        if (Check(d) is var (property, problem))
        {
            throw new InvalidOperationException($"Configuration setting '{RunnerTemplateDefinition.Section}:{name}:{property}' {problem}.");
        }
    }

    private static void ValidateFile(RunnerTemplateDefinition d, string file)
    {
        if (Check(d) is var (property, problem))
        {
            // Files use camelCase keys, nested with dots.
            var key = string.Join('.', property.Split(':').Select(p => char.ToLowerInvariant(p[0]) + p[1..]));
            throw new InvalidOperationException($"Runner template file '{file}': {key} {problem}.");
        }
    }
}
