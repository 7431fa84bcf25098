using k8s;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// The one KubernetesClient of the backend, made on first use so a provisioner whose cluster
/// settings are wrong still starts (and says what is wrong) instead of failing its whole host.
/// </summary>
public sealed class KubernetesConnection(IOptions<KubernetesOptions> options) : IDisposable
{
    private readonly Lazy<(IKubernetes? Client, string? Problem)> _client = new(() => Create(options.Value));

    public KubernetesOptions Options { get; } = options.Value;

    /// <summary>Null when a client could be made, else why not and which setting fixes it.</summary>
    public string? Problem => _client.Value.Problem;

    public IKubernetes Client => _client.Value.Client ?? throw new RunnerStartException(_client.Value.Problem!);

    private static (IKubernetes?, string?) Create(KubernetesOptions o)
    {
        try
        {
            KubernetesClientConfiguration config;
            if (!string.IsNullOrWhiteSpace(o.ApiServer)) config = new KubernetesClientConfiguration { Host = o.ApiServer };
            else if (!string.IsNullOrWhiteSpace(o.KubeConfig)) config = KubernetesClientConfiguration.BuildConfigFromConfigFile(o.KubeConfig, o.KubeConfigContext);
            else if (!string.IsNullOrWhiteSpace(o.KubeConfigContent))
            {
                // A kubeconfig held as a secret setting: where no file can be mounted (a provisioner in Container Apps).
                using var content = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(o.KubeConfigContent));
                config = KubernetesClientConfiguration.BuildConfigFromConfigFile(content, o.KubeConfigContext);
            }
            else if (KubernetesClientConfiguration.IsInCluster()) config = KubernetesClientConfiguration.InClusterConfig();
            else return (null, $"no Kubernetes cluster to talk to: run the provisioner in-cluster, or set {KubernetesOptions.Section}:KubeConfig (a file), :KubeConfigContent (its text) or :ApiServer");
            return (new k8s.Kubernetes(config), null);
        }
        catch (Exception ex) when (ex is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException or FormatException or UriFormatException or YamlDotNet.Core.YamlException)
        {
            return (null, $"the Kubernetes client could not be configured ({KubernetesOptions.Section}): {ex.Message}");
        }
    }

    public void Dispose()
    {
        if (_client.IsValueCreated) _client.Value.Client?.Dispose();
    }
}
