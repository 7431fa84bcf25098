using EphemeralCI.Provisioner.Backends.Kubernetes;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Kubernetes;

public sealed class KubernetesConnectionTests
{
    private const string Kubeconfig = """
        apiVersion: v1
        kind: Config
        clusters:
        - name: runners
          cluster: {server: "https://runners.example.test:6443", insecure-skip-tls-verify: true}
        users:
        - name: provisioner
          user: {token: not-a-real-token}
        contexts:
        - name: runners
          context: {cluster: runners, user: provisioner, namespace: ephemeralci-runners}
        current-context: runners
        """;

    [Fact]
    public void A_kubeconfig_given_as_text_configures_the_client()
    {
        using var connection = new KubernetesConnection(Microsoft.Extensions.Options.Options.Create(new KubernetesOptions { KubeConfigContent = Kubeconfig }));
        Assert.Null(connection.Problem);
        Assert.Equal("runners.example.test", connection.Client.BaseUri.Host);
    }

    [Fact]
    public void A_malformed_kubeconfig_text_is_a_problem_naming_the_section_not_a_crash()
    {
        using var connection = new KubernetesConnection(Microsoft.Extensions.Options.Options.Create(new KubernetesOptions { KubeConfigContent = "clusters: [this is not a kubeconfig" }));
        Assert.NotNull(connection.Problem);
        Assert.Contains(KubernetesOptions.Section, connection.Problem);
    }
}
