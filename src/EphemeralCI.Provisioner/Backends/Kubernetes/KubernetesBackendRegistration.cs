using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

public static class KubernetesBackendRegistration
{
    /// <summary>Adds the backend when the configuration has a <c>Provisioner:Kubernetes</c> section.</summary>
    public static IServiceCollection AddKubernetesBackendIfConfigured(this IServiceCollection services, IConfiguration configuration) =>
        configuration.GetSection(KubernetesOptions.Section).Exists() ? services.AddKubernetesBackend() : services;

    /// <summary>
    /// The Kubernetes backend: runner Jobs, their pod watcher (a hosted service) and progress
    /// through the provisioner's outbox. Registered when <c>Provisioner:Kubernetes</c> exists.
    /// </summary>
    public static IServiceCollection AddKubernetesBackend(this IServiceCollection services)
    {
        services.AddOptions<KubernetesOptions>().BindConfiguration(KubernetesOptions.Section);
        services.AddSingleton<KubernetesConnection>();
        services.TryAddSingleton<IRunnerProgressSink, OutboxRunnerProgressSink>();
        services.AddSingleton<KubernetesPodWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<KubernetesPodWatcher>());
        services.AddSingleton<KubernetesRunnerBackend>();
        services.AddSingleton<IRunnerBackend>(sp => sp.GetRequiredService<KubernetesRunnerBackend>());
        services.AddSingleton<Teardown.ITeardownVerifier, KubernetesTeardownVerifier>();
        return services;
    }
}
