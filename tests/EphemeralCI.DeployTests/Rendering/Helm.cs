using System.Collections.Concurrent;
using System.Diagnostics;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>
/// Renders deploy/helm/ephemeralci with the real Helm that eng/kubectl.sh installs beside kubectl
/// (<c>helm template</c>, which also checks the values against values.schema.json), and loads the
/// output as typed Kubernetes objects, like <see cref="Kustomize"/>.
/// </summary>
public static class Helm
{
    /// <summary>The chart with its default values.</summary>
    public const string Default = "helm";

    /// <summary>The chart with deploy/helm/examples/production.yaml (the production overlay's twin).</summary>
    public const string Production = "helm:examples/production.yaml";

    /// <summary>Production plus deploy/helm/examples/github-actions.yaml (githubActions.enabled): overlays/github-actions' twin.</summary>
    public const string WithGitHubActions = "helm:examples/production.yaml,examples/github-actions.yaml";

    public const string ReleaseName = "ephemeralci";

    private static readonly ConcurrentDictionary<string, Lazy<RenderedManifests>> Cache = new();

    public static string Chart => Path.Combine(Repository.Root, "deploy", "helm", "ephemeralci");

    public static bool IsHelmTarget(string target) => target == Default || target.StartsWith(Default + ":", StringComparison.Ordinal);

    public static RenderedManifests Render(string target) =>
        Cache.GetOrAdd(target, t => new Lazy<RenderedManifests>(() => Kustomize.Load(RenderText(ArgumentsOf(t))))).Value;

    /// <summary>Extra <c>helm template</c> arguments of a target: <c>helm:&lt;values files under deploy/helm, comma-separated, later wins&gt;</c>.</summary>
    public static string[] ArgumentsOf(string target) =>
        target == Default ? [] : [.. target[(Default.Length + 1)..].Split(',').SelectMany(file => new[] { "-f", Path.Combine(Repository.Root, "deploy", "helm", file) })];

    /// <summary><c>helm template</c> of the chart; throws with Helm's message when it refuses (schema, a template's fail).</summary>
    public static string RenderText(params string[] arguments)
    {
        var (exit, stdout, stderr) = Template(arguments);
        if (exit != 0) throw new InvalidOperationException($"helm template {string.Join(' ', arguments)} failed ({exit}): {stderr}");
        return stdout;
    }

    public static (int ExitCode, string Stdout, string Stderr) Template(params string[] arguments)
    {
        var start = new ProcessStartInfo(Executable(), ["template", ReleaseName, Chart, "--namespace", "default", .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // No cluster: `lookup` (the Secret checksums) answers empty, as in a first install.
        start.Environment["KUBECONFIG"] = "/dev/null";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>ECI_HELM, else the helm eng/kubectl.sh installs beside kubectl.</summary>
    public static string Executable()
    {
        var configured = Environment.GetEnvironmentVariable("ECI_HELM");
        if (!string.IsNullOrWhiteSpace(configured)) return configured;
        var beside = Path.Combine(Path.GetDirectoryName(Kustomize.Kubectl())!, "helm");
        if (File.Exists(beside)) return beside;
        throw new InvalidOperationException($"No helm beside {Kustomize.Kubectl()}: run {Kustomize.InstallScript} (it installs both) or set ECI_HELM.");
    }
}

/// <summary>Every way we ship the manifests: the Kustomize base and overlays, and the Helm chart.</summary>
public static class Manifests
{
    public static readonly string[] Targets = [.. Kustomize.Targets, Helm.Default, Helm.Production, Helm.WithGitHubActions];

    /// <summary>The renderings with the optional GitHub Actions adapter turned on: the Kustomize example overlay and its chart twin.</summary>
    public static readonly string[] WithGitHubActions = [Kustomize.WithGitHubActions, Helm.WithGitHubActions];

    /// <summary>The production-shaped renderings: the Kustomize overlay and the chart with its production example.</summary>
    public static readonly string[] Production = ["overlays/production", Helm.Production];

    public static RenderedManifests Render(string target) => Helm.IsHelmTarget(target) ? Helm.Render(target) : Kustomize.Render(target);

    /// <summary>A rendering of its own (not the shared cached one), for tests that break it on purpose.</summary>
    public static RenderedManifests RenderFresh(string target) =>
        Kustomize.Load(Helm.IsHelmTarget(target) ? Helm.RenderText(Helm.ArgumentsOf(target)) : Kustomize.RenderText(target));
}
