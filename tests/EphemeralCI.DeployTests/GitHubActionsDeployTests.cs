using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.GitHubActions;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// The GitHub Actions adapter (issue 19) is optional: off in every shipped rendering, on in the example overlay
/// <c>overlays/github-actions</c> and its chart twin (<c>githubActions.enabled</c>, deploy/helm/examples/github-actions.yaml),
/// which every other test of this project also renders (security, pinning, policies; HelmChartTests compares the two).
/// Here: what is particular to it — its credentials come only from a Secret (the App's key and webhook secret from the
/// broker, never from the manifests), it reaches the broker's admin listener, no runner reaches it, and the chart's
/// settings are what the adapter's own options code accepts.
/// </summary>
public sealed class GitHubActionsDeployTests
{
    private const string Adapter = "github-actions";

    public static TheoryData<string> Shipped => [.. Manifests.Targets.Where(t => !Manifests.WithGitHubActions.Contains(t))];

    public static TheoryData<string> WithAdapter => [.. Manifests.WithGitHubActions];

    [Theory]
    [MemberData(nameof(Shipped))]
    public void The_adapter_is_off_unless_an_overlay_or_the_values_turn_it_on(string target)
    {
        var m = Manifests.Render(target);
        Assert.DoesNotContain(m.All, o => o.Metadata.Name.Contains(Adapter, StringComparison.Ordinal));
        Assert.DoesNotContain(m.OfType<V1NetworkPolicy>(), p => p.Spec.PodSelector.MatchLabels?.Values.Contains(Adapter) == true
            || (p.Spec.Ingress ?? []).SelectMany(r => r.FromProperty ?? []).Any(peer => peer.PodSelector?.MatchLabels?.Values.Contains(Adapter) == true));
    }

    [Theory]
    [MemberData(nameof(WithAdapter))]
    public void Its_credentials_come_from_a_Secret_and_the_Apps_key_and_webhook_secret_from_the_broker_never_the_manifests(string target)
    {
        var m = Manifests.Render(target);
        var pod = m.Deployment(Adapter).Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);
        Assert.Equal(["github-actions"], container.EnvFrom.Where(e => e.SecretRef is not null).Select(e => e.SecretRef.Name));
        Assert.Equal(["github-actions"], container.EnvFrom.Where(e => e.ConfigMapRef is not null).Select(e => e.ConfigMapRef.Name));
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);
        // Literal env is addresses and ports only; the key, the webhook secret and every token are nowhere in the manifests.
        Assert.Equal(["ASPNETCORE_HTTP_PORTS", "GitHubActions__IntakeUrl", "GitHubActions__SecretsBrokerUrl", "HOME"], env.Keys.Order());
        Assert.Equal("http://secrets-broker:8081", env["GitHubActions__SecretsBrokerUrl"]);
        Assert.DoesNotContain(m.All, o => o is V1Secret);
        var config = m.OfType<V1ConfigMap>().Where(c => c.Metadata.Name.StartsWith(Adapter, StringComparison.Ordinal)).ToList();
        if (Helm.IsHelmTarget(target))
        {
            // The chart renders the ConfigMap the component leaves to the operator: settings only, never a credential.
            var data = Assert.Single(config).Data;
            Assert.All(data.Keys, k => Assert.StartsWith("GitHubActions__", k, StringComparison.Ordinal));
            Assert.DoesNotContain(data.Keys, k => k.EndsWith("Token", StringComparison.Ordinal) || k.EndsWith("Key", StringComparison.Ordinal) || k.Contains("ApiKey", StringComparison.Ordinal));
            Assert.Equal("ECI_GITHUB_APP_PRIVATE_KEY", data["GitHubActions__PrivateKeySecret"]);
            Assert.Equal("ECI_GITHUB_WEBHOOK_SECRET", data["GitHubActions__WebhookSecret"]);
        }
        else
        {
            Assert.Empty(config);
        }
        // It never talks to the Kubernetes API: no token, a ServiceAccount of its own.
        Assert.Equal(Adapter, pod.ServiceAccountName);
        Assert.False(pod.AutomountServiceAccountToken);
        Assert.False(Assert.Single(m.OfType<V1ServiceAccount>(), a => a.Metadata.Name == Adapter).AutomountServiceAccountToken);
    }

    [Theory]
    [MemberData(nameof(WithAdapter))]
    public void It_reaches_the_intake_and_the_brokers_admin_listener_and_no_runner_reaches_it(string target)
    {
        var m = Manifests.Render(target);
        var net = new NetworkPolicyEvaluator(m);
        var adapter = NetworkPolicyTests.Service(m, Adapter, "10.244.2.30");
        var broker = NetworkPolicyTests.Service(m, "secrets-broker");
        var intake = NetworkPolicyTests.Service(m, "intake");
        Assert.True(net.EgressAllowed(adapter, broker, 8081) && net.IngressAllowed(broker, adapter, 8081), "adapter → broker admin");
        Assert.True(net.EgressAllowed(adapter, intake, 8080) && net.IngressAllowed(intake, adapter, 8080), "adapter → intake");
        // The webhook port answers the cluster's ingress controller, never a runner (a job forging deliveries or probing).
        foreach (var internet in new[] { false, true })
        {
            var runner = NetworkPolicyTests.Runner(internet);
            Assert.False(net.EgressAllowed(runner, adapter, 8080) && net.IngressAllowed(adapter, runner, 8080), $"runner (internet: {internet}) → adapter");
        }
        Assert.True(net.IngressAllowed(adapter, NetworkPolicyTests.SomeOtherWorkload, 8080), "an ingress controller in another namespace → adapter");
    }

    /// <summary>The chart's example with githubActions on, plus extra <c>helm template</c> arguments.</summary>
    private static string[] Example(params string[] extra) => [.. Helm.ArgumentsOf(Helm.WithGitHubActions), .. extra];

    [Fact]
    public void The_charts_settings_are_what_the_adapters_options_bind_and_its_start_up_validation_accepts()
    {
        const string command = "cd /home/runner && exec ./run.sh --jitconfig \"$GITHUB_JIT_CONFIG\"";
        var m = Kustomize.Load(Helm.RenderText(Example(
            "--set", "githubActions.templates.linux.minIdle=2,githubActions.templates.linux.maxIdleAge=02:00:00",
            // Helm reads numbers as floats: a large id must still reach the pod as digits (not 1.23456789e+08).
            "--set", "githubActions.templates.org.runnerTemplate=actions-runner,githubActions.templates.org.labels[0]=big,githubActions.templates.org.organization=true,githubActions.templates.org.runnerGroupId=123456789",
            "--set-string", $"githubActions.templates.org.runnerCommand={command}",
            "--set", "githubActions.appId=2000000,githubActions.maxListPages=20,githubActions.reconcileInterval=00:01:00")));
        var data = m.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == Adapter).Data;
        Assert.Equal(Adapter, m.Deployment(Adapter).Spec.Template.Spec.Containers[0].EnvFrom.Single(e => e.ConfigMapRef is not null).ConfigMapRef.Name);

        // Every key the chart writes binds to a property: a misspelt one would fail here, not be ignored by the pod.
        var settings = new ConfigurationBuilder().AddInMemoryCollection(data.Select(kv => KeyValuePair.Create(kv.Key.Replace("__", ":", StringComparison.Ordinal), (string?)kv.Value))).Build();
        var options = settings.GetSection(GitHubActionsOptions.Section).Get<GitHubActionsOptions>(o => o.ErrorOnUnknownConfiguration = true)!;
        Assert.Equal("2000000", options.AppId);
        Assert.Equal(["acme/widgets", "acme/gadgets"], options.Repositories);
        Assert.Equal(TimeSpan.FromMinutes(1), options.ReconcileInterval);
        Assert.Equal(20, options.MaxListPages);
        Assert.Equal(new Uri("https://api.github.com"), options.ApiUrl);
        var linux = options.Templates["linux"];
        Assert.Equal(("actions-runner", 3600, 2, TimeSpan.FromHours(2), false, 1L), (linux.RunnerTemplate, linux.TimeoutSeconds, linux.MinIdle, linux.MaxIdleAge, linux.Organization, linux.RunnerGroupId));
        Assert.Equal(["self-hosted", "linux", "x64"], linux.Labels);
        Assert.Equal(["acme/*"], linux.Repositories);
        var org = options.Templates["org"];
        Assert.Equal((true, 123456789L, command), (org.Organization, org.RunnerGroupId, org.RunnerCommand));

        // The adapter's own registration and validation (Templates, Repositories, the ECI_GITHUB_ names, MinIdle…), with
        // the Deployment's literal env and stand-ins for the Secret's keys: the pod would start.
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddConfiguration(settings);
        builder.Configuration.AddInMemoryCollection(m.Deployment(Adapter).Spec.Template.Spec.Containers[0].Env
            .Select(e => KeyValuePair.Create(e.Name.Replace("__", ":", StringComparison.Ordinal), (string?)e.Value))
            .Append(KeyValuePair.Create("ConnectionStrings:githubactionsdb", (string?)"Host=postgres.invalid;Database=githubactionsdb"))
            .Append(KeyValuePair.Create("GitHubActions:IntakeApiKey", (string?)"stand-in"))
            .Append(KeyValuePair.Create("GitHubActions:SecretsBrokerToken", (string?)"stand-in")));
        Assert.True(builder.AddGitHubActions());
        using var host = builder.Build();
        Assert.Equal(2, host.Services.GetRequiredService<IOptions<GitHubActionsOptions>>().Value.Templates.Count);
    }

    [Fact]
    public void The_schema_refuses_an_adapter_configuration_the_adapter_would_refuse_or_that_weakens_it()
    {
        // One helm run with every bad value (distinct keys; a bad template each): the schema names every failing field.
        const string runner = "\"runnerTemplate\":\"actions-runner\"";
        (string Value, string Field)[] bad =
        [
            ($"githubActions.templates.nolabels={{{runner},\"labels\":[]}}", "/githubActions/templates/nolabels/labels"),
            ($"githubActions.templates.nulllabels={{{runner},\"labels\":null}}", "/githubActions/templates/nulllabels/labels"),
            ($"githubActions.templates.typo={{{runner},\"labels\":[\"x64\"],\"label\":[\"x64\"]}}", "/githubActions/templates/typo': additional properties 'label'"),
            ("githubActions.templates.norunner={\"labels\":[\"x64\"]}", "/githubActions/templates/norunner': missing property 'runnerTemplate'"),
            ($"githubActions.templates.dotdot={{{runner},\"labels\":[\"x64\"],\"repositories\":[\"acme/..\"]}}", "/githubActions/templates/dotdot/repositories/0"),
            ($"githubActions.templates.anyowner={{{runner},\"labels\":[\"x64\"],\"repositories\":[\"*/*\"]}}", "/githubActions/templates/anyowner/repositories/0"),
            ($"githubActions.templates.fleet={{{runner},\"labels\":[\"x64\"],\"minIdle\":33}}", "/githubActions/templates/fleet/minIdle"),
            ($"githubActions.templates.ageless={{{runner},\"labels\":[\"x64\"],\"maxIdleAge\":\"00:00:00\"}}", "/githubActions/templates/ageless/maxIdleAge"),
            ($"githubActions.templates.group0={{{runner},\"labels\":[\"x64\"],\"runnerGroupId\":0}}", "/githubActions/templates/group0/runnerGroupId"),
            // "__" would split the configuration key GitHubActions__Templates__<name>__…
            ($"githubActions.templates.linux__x={{{runner},\"labels\":[\"x64\"]}}", "invalid propertyName 'linux__x'"),
            ("githubActions.appId=\"my-app\"", "/githubActions/appId"),
            ("githubActions.repositories=[\"acme/widgets\",\"acme/*\"]", "/githubActions/repositories/1"),
            // The adapter's broker token opens ECI_GITHUB_* only; anything else could not be read (or names another secret).
            ("githubActions.privateKeySecret=\"ECI_ADMIN_TOKEN\"", "/githubActions/privateKeySecret"),
            ("githubActions.webhookSecret=\"webhook\"", "/githubActions/webhookSecret"),
            ("githubActions.apiUrl=\"http://github.example.com/api/v3\"", "/githubActions/apiUrl"),
            ("githubActions.maxListPages=0", "/githubActions/maxListPages"),
            ("githubActions.reconcileInterval=\"00:00:00\"", "/githubActions/reconcileInterval"),
            ("githubActions.replicas=0", "/githubActions/replicas"),
            ("image.digests={\"github-actions\":\"sha256:abc\"}", "/image/digests/github-actions"),
        ];
        var (exit, _, stderr) = Helm.Template(Example([.. bad.SelectMany(b => new[] { "--set-json", b.Value })]));
        Assert.True(exit != 0, "helm accepted them all");
        Assert.All(bad, b => Assert.True(stderr.Contains(b.Field, StringComparison.Ordinal), $"{b.Value}: no '{b.Field}' in {stderr}"));
        // Each is refused on its own too (not only beside the others): the first, the example's brief.
        Assert.NotEqual(0, Helm.Template(Example("--set-json", bad[0].Value)).ExitCode);
    }

    [Theory]
    [InlineData("nosuch", "githubActions.templates.linux.runnerTemplate: no runnerTemplates.nosuch")]
    [InlineData("shell", "githubActions.templates.linux.runnerTemplate: runnerTemplates.shell must have network: egress")]
    public void The_chart_refuses_a_runner_template_it_does_not_have_or_that_cannot_reach_GitHub(string runnerTemplate, string message)
    {
        var (exit, _, stderr) = Helm.Template(Example("--set", $"githubActions.templates.linux.runnerTemplate={runnerTemplate}"));
        Assert.True(exit != 0, $"helm accepted {runnerTemplate}");
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }
}
