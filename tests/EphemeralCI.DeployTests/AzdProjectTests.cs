using System.Text.Json.Nodes;
using System.Xml.Linq;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.RunnerTemplates;
using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>deploy/azure.yaml: the azd project that deploys the Aspire AppHost.</summary>
public sealed class AzdProjectTests
{
    [Fact]
    public void Azure_yaml_points_at_the_apphost_as_a_container_apps_service()
    {
        var path = Path.Combine(Repository.Root, "deploy", "azure.yaml");
        var yaml = new YamlStream();
        using (var reader = new StreamReader(path)) yaml.Load(reader);
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        Assert.Equal("ephemeralci", root["name"].ToString());
        var services = (YamlMappingNode)root["services"];
        var service = (YamlMappingNode)Assert.Single(services.Children).Value;
        Assert.Equal("dotnet", service["language"].ToString());
        Assert.Equal("containerapp", service["host"].ToString());

        // azd resolves the project relative to azure.yaml; it must be the Aspire AppHost.
        var project = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, service["project"].ToString()));
        Assert.True(File.Exists(project), $"azure.yaml names {project}, which does not exist");
        var sdk = XDocument.Load(project).Root!.Attribute("Sdk")?.Value ?? "";
        Assert.StartsWith("Aspire.AppHost.Sdk", sdk, StringComparison.Ordinal);
    }

    [Fact]
    public void The_published_manifest_carries_no_path_of_the_build_machine_and_the_templates_inline()
    {
        var resources = AspireManifest.Publish("Containers")["resources"]!.AsObject();
        foreach (var project in new[] { "intake", "secrets-broker", "cache", "provisioner" })
        {
            Assert.Equal("project.v0", resources[project]?["type"]?.ToString());
        }
        // A path of this checkout in a setting would exist in no container (it did: RunnerTemplates__Directory).
        foreach (var (name, resource) in resources)
        {
            foreach (var (key, value) in resource!["env"]?.AsObject() ?? [])
            {
                Assert.False(value!.ToString().Contains(Repository.Root, StringComparison.Ordinal), $"{name}: {key} names a path of the build machine");
            }
        }

        // Intake and provisioner get the same templates, and they read back as the files say.
        AssertTemplatesPublished(resources, Path.Combine(Repository.Root, "deploy", "runner-templates"));

        // Generated secrets: azd generates and keeps them; none has a value in the manifest.
        foreach (var parameter in new[] { "secrets-kek", "secrets-admin-token", "secrets-provisioner-token", "secrets-cache-token", "secrets-attestation-token", "job-token-signing-key", "minio-password" })
        {
            var input = resources[parameter]!["inputs"]!["value"]!;
            Assert.Equal("true", input["secret"]?.ToString(), ignoreCase: true);
            Assert.NotNull(input["default"]?["generate"]);
        }
        // Each shared credential is the same parameter at both ends.
        Assert.Equal("{secrets-provisioner-token.value}", resources["secrets-broker"]!["env"]!["SecretsBroker__ProvisionerToken"]!.ToString());
        Assert.Equal("{secrets-provisioner-token.value}", resources["provisioner"]!["env"]!["JobTokens__ProvisionerToken"]!.ToString());
        Assert.Equal("{secrets-cache-token.value}", resources["secrets-broker"]!["env"]!["SecretsBroker__CacheToken"]!.ToString());
        Assert.Equal("{secrets-cache-token.value}", resources["cache"]!["env"]!["Checkout__SecretsBrokerToken"]!.ToString());
        // No admin listener under azd (docs/deploy.md, "Operator routes on their own port"): Container Apps
        // gives an app one HTTP ingress port, so the operator routes stay on it, behind their tokens.
        foreach (var (name, resource) in resources)
        {
            Assert.Null(resource!["env"]?["AdminListener__Port"]);
        }
        // Only the intake is reachable from outside.
        var external = resources.Where(r => r.Value!["bindings"]?.AsObject().Any(b => b.Value?["external"]?.GetValue<bool>() == true) == true).Select(r => r.Key);
        Assert.Equal(["intake"], external);
    }

    [Fact]
    public void External_mode_publishes_without_connection_strings_and_asks_for_them_as_secrets()
    {
        var resources = AspireManifest.Publish("External")["resources"]!.AsObject();
        foreach (var name in new[] { "intakedb", "provisionerdb", "secretsdb", "cachedb", "redis", "rabbitmq", "minio" })
        {
            var resource = resources[name];
            Assert.True(resource is not null, $"no parameter for connection string {name}");
            Assert.Equal("parameter.v0", resource["type"]?.ToString());
            Assert.Equal("true", resource["inputs"]?["value"]?["secret"]?.ToString(), ignoreCase: true);
        }
        Assert.DoesNotContain("postgres", resources.Select(r => r.Key));
    }

    /// <summary>The intake and the provisioner carry the directory's templates, which load with the files' own hashes.</summary>
    private static void AssertTemplatesPublished(JsonObject resources, string directory)
    {
        var files = RunnerTemplateLoader.LoadDirectory(directory);
        var intake = TemplateSettings(resources["intake"]!);
        Assert.Equal(intake, TemplateSettings(resources["provisioner"]!));
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(intake.Select(kv => new KeyValuePair<string, string?>(kv.Key.Replace("__", ":", StringComparison.Ordinal), kv.Value)))
            .Build();
        var loaded = RunnerTemplateLoader.Load(configuration);
        Assert.Equal(files.Select(f => f.Name).Order(), loaded.Keys.Order());
        foreach (var file in files)
        {
            Assert.Equal(file.ContentHash, loaded[file.Name].ContentHash);
        }
    }

    [Fact]
    public void With_kubernetes_runners_the_provisioner_is_wired_to_the_cluster_by_parameters_and_gets_the_kubernetes_templates()
    {
        var resources = AspireManifest.Publish("Containers", ("Runners__Backend", "kubernetes"))["resources"]!.AsObject();
        var env = resources["provisioner"]!["env"]!.AsObject();
        Assert.Equal("{runner-kubeconfig.value}", env["Provisioner__Kubernetes__KubeConfigContent"]!.ToString());
        Assert.Equal("{runner-namespace.value}", env["Provisioner__Kubernetes__Namespace"]!.ToString());
        Assert.Equal("{runner-intake-url.value}", env["Provisioner__Kubernetes__IntakeUrl"]!.ToString());
        Assert.Equal("{runner-secrets-broker-url.value}", env["Provisioner__Kubernetes__SecretsBrokerUrl"]!.ToString());
        Assert.Equal("{runner-cache-url.value}", env["Provisioner__Kubernetes__CacheUrl"]!.ToString());
        Assert.Equal(Images.ImageRecipe.NativeAgentPath, env["Provisioner__Kubernetes__AgentAssemblyPath"]!.ToString());
        // Parameters azd asks for once and keeps in its environment; the kubeconfig is a secret.
        Assert.Equal("true", resources["runner-kubeconfig"]!["inputs"]!["value"]!["secret"]?.ToString(), ignoreCase: true);
        Assert.Equal("ephemeralci-runners", resources["runner-namespace"]!["inputs"]!["value"]!["default"]!["value"]!.ToString());
        foreach (var name in new[] { "runner-kubeconfig", "runner-intake-url", "runner-secrets-broker-url", "runner-cache-url" })
        {
            Assert.Equal("parameter.v0", resources[name]!["type"]!.ToString());
        }
        // The Kubernetes templates, as the cluster's files hash (labels with '/' in their keys publish too).
        AssertTemplatesPublished(resources, Path.Combine(Repository.Root, "deploy", "kubernetes", "base", "runner-templates"));
        Assert.Contains(TemplateSettings(resources["intake"]!).Values, v => v.Contains("network: egress", StringComparison.Ordinal));
        // Runners call the intake, the broker and the cache from the cluster.
        var external = resources.Where(r => r.Value!["bindings"]?.AsObject().Any(b => b.Value?["external"]?.GetValue<bool>() == true) == true).Select(r => r.Key).Order();
        Assert.Equal(["cache", "intake", "secrets-broker"], external);
    }

    [Fact]
    public void Key_encryption_key_ids_are_settings_and_the_active_one_a_parameter()
    {
        var resources = AspireManifest.Publish("Containers", ("SecretsBroker__KeyIds", "k1,k2"))["resources"]!.AsObject();
        var env = resources["secrets-broker"]!["env"]!.AsObject();
        Assert.Equal("{secrets-kek.value}", env["SecretsBroker__KeyEncryptionKeys__k1"]!.ToString());
        Assert.Equal("{secrets-kek-k2.value}", env["SecretsBroker__KeyEncryptionKeys__k2"]!.ToString());
        Assert.Equal("{secrets-kek-active-id.value}", env["SecretsBroker__ActiveKeyId"]!.ToString());
        Assert.Equal("k2", resources["secrets-kek-active-id"]!["inputs"]!["value"]!["default"]!["value"]!.ToString());
        Assert.NotNull(resources["secrets-kek-k2"]!["inputs"]!["value"]!["default"]?["generate"]);
        // By default one key, k1, active: what every deployment so far has.
        var defaults = AspireManifest.Publish("Containers")["resources"]!.AsObject();
        Assert.Equal("k1", defaults["secrets-kek-active-id"]!["inputs"]!["value"]!["default"]!["value"]!.ToString());
        Assert.Null(defaults["secrets-broker"]!["env"]!["SecretsBroker__KeyEncryptionKeys__k2"]);
    }

    private static SortedDictionary<string, string> TemplateSettings(JsonNode resource) =>
        new(resource["env"]!.AsObject()
            .Where(kv => kv.Key.StartsWith("RunnerTemplates__", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value!.ToString()), StringComparer.Ordinal);
}
