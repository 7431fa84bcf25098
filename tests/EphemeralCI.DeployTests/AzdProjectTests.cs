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
        var files = RunnerTemplateLoader.LoadDirectory(Path.Combine(Repository.Root, "deploy", "runner-templates"));
        var intake = TemplateSettings(resources["intake"]!);
        Assert.Equal(intake, TemplateSettings(resources["provisioner"]!));
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(intake.Select(kv => new KeyValuePair<string, string?>(kv.Key.Replace("__", ":", StringComparison.Ordinal), kv.Value)))
            .Build();
        var loaded = RunnerTemplateLoader.Load(configuration);
        Assert.Equal(files.Select(f => f.Name).Order(), loaded.Keys.Order());
        foreach (var file in files)
        {
            Assert.Equal(RunnerTemplateLoader.HashOf(file.Definition), loaded[file.Name].ContentHash);
        }

        // Generated secrets: azd generates and keeps them; none has a value in the manifest.
        foreach (var parameter in new[] { "secrets-kek", "secrets-admin-token", "secrets-provisioner-token", "job-token-signing-key" })
        {
            var input = resources[parameter]!["inputs"]!["value"]!;
            Assert.Equal("true", input["secret"]?.ToString(), ignoreCase: true);
            Assert.NotNull(input["default"]?["generate"]);
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

    private static SortedDictionary<string, string> TemplateSettings(JsonNode resource) =>
        new(resource["env"]!.AsObject()
            .Where(kv => kv.Key.StartsWith("RunnerTemplates__", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value!.ToString()), StringComparer.Ordinal);
}
