using EphemeralCI.Provisioner;
using EphemeralCI.IntegrationTests.Fakes.FakeKubernetes;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>The whole provisioner module as a host, with a <c>k8s</c> template on the FAKE Kubernetes API server.</summary>
public static class KubernetesProvisionerHost
{
    /// <param name="localRoot">Its local backend is registered too: a cgroup parent and work root of its own, or
    /// its reconciler would take other provisioners' runners on this machine for leftovers.</param>
    public static async Task<IHost> StartAsync(FakeKubernetesApiServer fake, string database, string broker, string signingKey,
        (string CgroupName, string WorkRoot) localRoot, IReadOnlyDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:provisionerdb"] = database,
            ["ConnectionStrings:rabbitmq"] = broker,
            ["JobTokens:SigningKey"] = signingKey,
            ["Provisioner:IntakeUrl"] = "http://127.0.0.1:9",
            ["Provisioner:LocalSandbox:CgroupName"] = localRoot.CgroupName,
            ["Provisioner:LocalSandbox:WorkRoot"] = localRoot.WorkRoot,
            ["Provisioner:Kubernetes:ApiServer"] = fake.Address.ToString(),
            ["Provisioner:Kubernetes:IntakeUrl"] = "http://intake.ephemeralci.svc:8080",
            ["RunnerTemplates:k8s:Backend"] = "kubernetes",
            ["RunnerTemplates:k8s:Image"] = "registry.example/eci-runner:1.0",
            ["RunnerTemplates:k8s:DefaultTimeoutSeconds"] = "300",
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>()) settings[key] = value;
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddProvisioner();
        // Publish only once the consumers' queues are bound in the fresh vhost, or RunJob goes nowhere.
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }
}
