using System.Xml.Linq;
using EphemeralCI.DeployTests.Rendering;
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
}
