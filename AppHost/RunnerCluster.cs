using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.AppHost;

/// <summary>
/// Where published deployments (azd) run their jobs. Container Apps cannot host the local sandbox
/// (no user namespaces), so with <c>Runners:Backend=kubernetes</c> the provisioner gets the Kubernetes
/// backend: the cluster's kubeconfig, the runners' namespace and the three URLs runners call back on
/// become deployment parameters (azd asks once and keeps them in its environment, so every deploy
/// sets them again instead of a hand edit the next deploy would drop), and the Kubernetes runner
/// templates of deploy/kubernetes are published instead of the local ones.
/// </summary>
public static class RunnerClusterExtensions
{
    public const string BackendSetting = "Runners:Backend";

    public static bool UsesKubernetesRunners(this IDistributedApplicationBuilder builder)
    {
        var backend = builder.Configuration[BackendSetting] ?? "local";
        return backend.ToLowerInvariant() switch
        {
            "local" => false,
            "kubernetes" => true,
            _ => throw new InvalidOperationException($"Setting '{BackendSetting}' is '{backend}': use 'local' (default) or 'kubernetes'."),
        };
    }

    /// <summary>The runner templates directory: the Kubernetes ones when runners go to a cluster.</summary>
    public static string RunnerTemplatesDirectory(this IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.UsesKubernetesRunners()
            ? Path.Combine(builder.AppHostDirectory, "..", "deploy", "kubernetes", "base", "runner-templates")
            : Path.Combine(builder.AppHostDirectory, "..", "deploy", "runner-templates"));

    public static IResourceBuilder<ProjectResource> WithKubernetesRunners(
        this IResourceBuilder<ProjectResource> provisioner, IDistributedApplicationBuilder builder)
    {
        if (!builder.UsesKubernetesRunners()) return provisioner;
        // A kubeconfig for a service account bound to deploy/kubernetes's runner Role (docs/deploy.md).
        var kubeconfig = builder.AddParameter("runner-kubeconfig", secret: true);
        var ns = builder.AddParameter("runner-namespace", "ephemeralci-runners", publishValueAsDefault: true);
        // The URLs runner pods reach the intake, the broker and the cache on (from the cluster).
        var intakeUrl = builder.AddParameter("runner-intake-url");
        var brokerUrl = builder.AddParameter("runner-secrets-broker-url");
        var cacheUrl = builder.AddParameter("runner-cache-url");
        return provisioner
            .WithEnvironment("Provisioner__Kubernetes__KubeConfigContent", kubeconfig)
            .WithEnvironment("Provisioner__Kubernetes__Namespace", ns)
            .WithEnvironment("Provisioner__Kubernetes__IntakeUrl", intakeUrl)
            .WithEnvironment("Provisioner__Kubernetes__SecretsBrokerUrl", brokerUrl)
            .WithEnvironment("Provisioner__Kubernetes__CacheUrl", cacheUrl)
            // The runner images' native agent (eng/images.sh).
            .WithEnvironment("Provisioner__Kubernetes__AgentAssemblyPath", "/opt/eci/agent/EphemeralCI.RunnerAgent");
    }

    /// <summary>
    /// The broker's key-encryption keys: one secret parameter per id in <c>SecretsBroker:KeyIds</c>
    /// (default <c>k1</c>, whose parameter keeps its first name, <c>secrets-kek</c>), and the active id as
    /// a parameter (default: the last id), so the rotation of docs/deploy.md is: add an id, deploy;
    /// change the active id, deploy; rewrap; drop the old id, deploy.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithKeyEncryptionKeys(
        this IResourceBuilder<ProjectResource> broker, IDistributedApplicationBuilder builder)
    {
        var ids = (builder.Configuration["SecretsBroker:KeyIds"] ?? "k1")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids.Length == 0 || ids.Any(id => !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')) || ids.Distinct().Count() != ids.Length)
        {
            throw new InvalidOperationException("Setting 'SecretsBroker:KeyIds' must list distinct key ids of letters, digits, '-' or '_', e.g. 'k1,k2'.");
        }
        foreach (var id in ids)
        {
            var kek = builder.AddParameter(id == "k1" ? "secrets-kek" : $"secrets-kek-{id.ToLowerInvariant()}",
                new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
            broker.WithEnvironment($"SecretsBroker__KeyEncryptionKeys__{id}", kek);
        }
        var active = builder.AddParameter("secrets-kek-active-id", ids[^1], publishValueAsDefault: true);
        return broker.WithEnvironment("SecretsBroker__ActiveKeyId", active);
    }
}
