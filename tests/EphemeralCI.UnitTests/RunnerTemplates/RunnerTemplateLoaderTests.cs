using EphemeralCI.RunnerTemplates;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerTemplates;

public sealed class RunnerTemplateLoaderTests
{
    private static string ShippedTemplates([System.Runtime.CompilerServices.CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "../../../deploy/runner-templates"));

    private static IConfiguration Config(Dictionary<string, string?> values) => new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    [Fact]
    public void The_shipped_templates_load_with_their_limits_and_a_hash()
    {
        var templates = RunnerTemplateLoader.Load(Config(new() { ["RunnerTemplates:Directory"] = ShippedTemplates() }));

        Assert.Equal(["default", "dotnet", "node"], templates.Keys.Order());
        var dotnet = templates["dotnet"].Definition;
        Assert.Equal((2000, 4096, 1024), (dotnet.Resources.CpuMillis, dotnet.Resources.MemoryMiB, dotnet.Resources.MaxProcesses));
        Assert.Equal("/var/lib/ephemeralci/roots/dotnet-sdk-10", dotnet.RootFilesystem);
        Assert.Equal("dotnet", dotnet.Labels["toolchain"]);
        Assert.All(templates.Values, t => Assert.Matches("^sha256:[0-9a-f]{64}$", t.ContentHash));
        Assert.Equal(3, templates.Values.Select(t => t.ContentHash).Distinct().Count());
    }

    [Fact]
    public void The_hash_follows_the_content_not_the_line_endings()
    {
        var a = RunnerTemplateLoader.Parse("t", "backend: local\nresources:\n  memoryMiB: 512\n", "a.yaml");
        var crlf = RunnerTemplateLoader.Parse("t", "\uFEFFbackend: local\r\nresources:\r\n  memoryMiB: 512\r\n", "b.yaml");
        var changed = RunnerTemplateLoader.Parse("t", "backend: local\nresources:\n  memoryMiB: 513\n", "c.yaml");

        Assert.Equal(a.ContentHash, crlf.ContentHash);
        Assert.NotEqual(a.ContentHash, changed.ContentHash);
        Assert.Equal(512, a.Definition.Resources.MemoryMiB);
        Assert.Equal(512, a.Definition.Resources.MaxProcesses); // unset keys keep the defaults
    }

    [Fact]
    public void A_typo_or_a_bad_value_stops_start_up_naming_the_file_and_key()
    {
        var typo = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", "backend: local\nresources:\n  memoryMib: 512\n", "t.yaml"));
        Assert.Contains("t.yaml", typo.Message);
        Assert.Contains("line 3", typo.Message);

        var root = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", "runAsUser: 0\n", "t.yaml"));
        Assert.Contains("runAsUser", root.Message);
        var network = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", "network: everywhere\n", "t.yaml"));
        Assert.Contains("network must be one of none, control-plane, egress", network.Message);
        var memory = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", "resources:\n  memoryMiB: -1\n", "t.yaml"));
        Assert.Contains("resources.memoryMiB", memory.Message);
    }

    [Fact]
    public void A_template_relaxes_the_sandbox_only_by_saying_so_and_only_on_the_local_backend()
    {
        var strict = RunnerTemplateLoader.Parse("t", "backend: local\n", "t.yaml");
        var relaxed = RunnerTemplateLoader.Parse("t", "backend: local\nsandbox:\n  allowUserNamespaces: true\n", "t.yaml");

        Assert.False(strict.Definition.Sandbox.AllowUserNamespaces);
        Assert.Empty(strict.Definition.Relaxations());
        Assert.True(relaxed.Definition.Sandbox.AllowUserNamespaces);
        Assert.Equal([EphemeralCI.Contracts.Jobs.RunnerSandboxSettings.AllowUserNamespacesRelaxation], relaxed.Definition.Relaxations());
        var kubernetes = Assert.Throws<InvalidOperationException>(() =>
            RunnerTemplateLoader.Parse("t", "backend: kubernetes\nimage: x\nsandbox:\n  allowUserNamespaces: true\n", "t.yaml"));
        Assert.Contains("sandbox.allowUserNamespaces is supported by the local backend only", kubernetes.Message);

        // A configuration-section template: the relaxation changes the hash, its absence leaves every existing hash as it was.
        var section = new EphemeralCI.Contracts.Jobs.RunnerTemplateDefinition();
        var before = RunnerTemplateLoader.HashOf(section);
        section.Sandbox.AllowUserNamespaces = true;
        Assert.NotEqual(before, RunnerTemplateLoader.HashOf(section));
    }

    [Fact]
    public void Kubernetes_placement_loads_from_yaml_and_is_refused_where_it_cannot_apply()
    {
        var placed = RunnerTemplateLoader.Parse("t", """
            backend: kubernetes
            image: registry.example/runner:1
            resources:
              ephemeralStorageMiB: 4096
            kubernetes:
              nodeSelector: {pool: runners}
              tolerations:
                - {key: dedicated, operator: Equal, value: ci, effect: NoSchedule}
              requiredNodeAffinity:
                - {key: kubernetes.io/arch, operator: In, values: [arm64]}
              runtimeClassName: gvisor
              imagePullSecrets: [registry-ci]
              serviceAccountName: builds-wi
            """, "t.yaml");
        var k = placed.Definition.Kubernetes;
        Assert.Equal("runners", k.NodeSelector["pool"]);
        Assert.Equal("NoSchedule", Assert.Single(k.Tolerations).Effect);
        Assert.Equal(["arm64"], Assert.Single(k.RequiredNodeAffinity).Values);
        Assert.Equal(("gvisor", "builds-wi"), (k.RuntimeClassName, k.ServiceAccountName));
        Assert.Equal(4096, placed.Definition.Resources.EphemeralStorageMiB);

        (string Yaml, string Message)[] refused =
        [
            ("backend: local\nkubernetes:\n  runtimeClassName: gvisor\n", "kubernetes is supported by the kubernetes backend only"),
            ("backend: kubernetes\nimage: x\nnetwork: none\n", "network cannot be none on the kubernetes backend"),
            ("backend: kubernetes\nimage: x\nlabels:\n  network.ephemeralci.dev/egress: internet\n", "labels.network.ephemeralci.dev/egress is reserved"),
            ("backend: kubernetes\nimage: x\nkubernetes:\n  tolerations:\n    - {key: a, operator: Maybe}\n", "kubernetes.tolerations.0.operator must be Equal or Exists"),
            ("backend: kubernetes\nimage: x\nkubernetes:\n  requiredNodeAffinity:\n    - {key: a, operator: In}\n", "kubernetes.requiredNodeAffinity.0.values must not be empty for In"),
            ("backend: kubernetes\nimage: x\nkubernetes:\n  runtimeClassName: Not_A_Name\n", "kubernetes.runtimeClassName must be a Kubernetes object name"),
        ];
        foreach (var (yaml, message) in refused)
        {
            var ex = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", yaml, "t.yaml"));
            Assert.Contains(message, ex.Message);
        }

        // A section template without placement keeps the hash it had.
        var section = new EphemeralCI.Contracts.Jobs.RunnerTemplateDefinition { Backend = "kubernetes" };
        var before = RunnerTemplateLoader.HashOf(section);
        section.Kubernetes.RuntimeClassName = "gvisor";
        Assert.NotEqual(before, RunnerTemplateLoader.HashOf(section));
    }

    [Fact]
    public void Section_templates_still_work_and_a_name_in_both_places_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("eci-templates-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "small.yaml"), "maxTimeoutSeconds: 60\ndefaultTimeoutSeconds: 30\n");
            var both = Config(new()
            {
                ["RunnerTemplates:Directory"] = dir.FullName,
                ["RunnerTemplates:big:Resources:MemoryMiB"] = "8192",
            });
            var templates = RunnerTemplateLoader.Load(both);
            Assert.Equal(8192, templates["big"].Definition.Resources.MemoryMiB);
            Assert.Equal(60, templates["small"].Definition.MaxTimeoutSeconds);
            Assert.DoesNotContain(RunnerTemplateLoader.DirectoryKey, templates.Keys);

            var clash = Config(new() { ["RunnerTemplates:Directory"] = dir.FullName, ["RunnerTemplates:small:Backend"] = "local" });
            var ex = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Load(clash));
            Assert.Contains("'small' is defined twice", ex.Message);

            var missing = Config(new() { ["RunnerTemplates:Directory"] = Path.Combine(dir.FullName, "nope") });
            Assert.Contains("RunnerTemplates:Directory", Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Load(missing)).Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void The_provisioner_catalog_gives_each_template_its_hash()
    {
        var catalog = RunnerTemplateCatalog.FromConfiguration(Config(new() { ["RunnerTemplates:Directory"] = ShippedTemplates() }));

        Assert.True(catalog.TryGetLoaded("node", out var node));
        Assert.Equal(RunnerTemplateLoader.LoadDirectory(ShippedTemplates()).Single(t => t.Name == "node").ContentHash, node!.ContentHash);
        Assert.True(catalog.TryGetLoaded(null, out var byDefault));
        Assert.Equal("default", byDefault!.Name);
    }
}
