using System.Text.RegularExpressions;
using EphemeralCI.DeployTests.Rendering;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>docs/deploy.md says what the manifests set: the values it names are the rendered ones.</summary>
public sealed partial class DeployDocTests
{
    private static string Doc => File.ReadAllText(Path.Combine(Repository.Root, "docs", "deploy.md"));

    private static string Section(string heading)
    {
        var doc = Doc;
        var start = doc.IndexOf("\n## " + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"docs/deploy.md has no section '{heading}'");
        var end = doc.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        return end < 0 ? doc[start..] : doc[start..end];
    }

    [Theory]
    [InlineData("base")]
    [InlineData(Helm.Default)]
    public void Settings_the_doc_gives_a_value_are_set_to_it_where_the_manifests_set_them(string target)
    {
        var settings = Manifests.Render(target).Deployments
            .SelectMany(d => d.Spec.Template.Spec.Containers[0].Env ?? [])
            .ToLookup(e => e.Name, e => e.Value);
        var checkedCount = 0;
        // `Name__Key=value` and "`Name__Key` to `value`" in the text.
        foreach (Match m in InlineSetting().Matches(Doc))
        {
            var (name, value) = (m.Groups["name"].Value, m.Groups["value"].Value);
            if (!settings.Contains(name)) continue; // a Secret's key or an AppHost setting
            checkedCount++;
            Assert.True(settings[name].Contains(value), $"docs/deploy.md: {name}={value}, the manifests: {string.Join(", ", settings[name])}");
        }
        Assert.True(checkedCount >= 3, "the scan found too few settings (AdminListener__Port, JobTokens__Authority, the agent path)");
    }

    [Theory]
    [InlineData("base")]
    [InlineData(Helm.Default)]
    public void The_admin_listener_section_shows_what_the_broker_and_the_cache_are_given(string target)
    {
        var section = Section("Operator routes on their own port");
        var m = Manifests.Render(target);
        var yaml = YamlEnv().Matches(section).Select(x => (x.Groups["name"].Value, x.Groups["value"].Value)).ToList();
        var ports = YamlPort().Matches(section).Select(x => (x.Groups["name"].Value, int.Parse(x.Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture))).ToList();
        Assert.NotEmpty(yaml);
        Assert.Equal(2, ports.Count);
        foreach (var service in new[] { "secrets-broker", "cache" })
        {
            var container = m.Deployment(service).Spec.Template.Spec.Containers[0];
            foreach (var (name, value) in yaml) Assert.Contains(container.Env, e => e.Name == name && e.Value == value);
            foreach (var (name, port) in ports) Assert.Contains(container.Ports, p => p.Name == name && p.ContainerPort == port);
        }
        // The callers' URL and the policies it names.
        var authority = m.Deployment("provisioner").Spec.Template.Spec.Containers[0].Env.Single(e => e.Name == "JobTokens__Authority").Value;
        Assert.Contains($"`{authority}`", section, StringComparison.Ordinal);
        foreach (Match policy in PolicyName().Matches(section))
        {
            var name = policy.Groups["name"].Value.Replace("…", "allow-secrets-broker-admin", StringComparison.Ordinal);
            Assert.Contains(m.NetworkPolicies(RenderedManifests.ControlPlane).Concat(m.NetworkPolicies(RenderedManifests.Runners)), p => p.Metadata.Name == name);
        }
    }

    [GeneratedRegex(@"`(?<name>[A-Z][A-Za-z]+(?:__[A-Za-z0-9]+)+)(?:=|`\s+to\s+`)\s*(?<value>[^`\s]+)`")]
    private static partial Regex InlineSetting();

    [GeneratedRegex(@"\{name: (?<name>[A-Za-z_]+), value: ""(?<value>[^""]*)""\}")]
    private static partial Regex YamlEnv();

    [GeneratedRegex(@"\{name: (?<name>[a-z]+), containerPort: (?<port>[0-9]+), protocol: TCP\}")]
    private static partial Regex YamlPort();

    [GeneratedRegex(@"`(?<name>(?:allow-[a-z-]+|…)-(?:egress|ingress)|allow-control-plane)`")]
    private static partial Regex PolicyName();
}
