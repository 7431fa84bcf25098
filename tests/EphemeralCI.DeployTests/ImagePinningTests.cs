using System.Text.RegularExpressions;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.RunnerTemplates;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>What runs is exactly what was released: every image is pinned by tag or digest.</summary>
public sealed partial class ImagePinningTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    /// <summary>
    /// True for <c>name:tag</c> (not latest) and <c>name@sha256:&lt;64 hex&gt;</c>; a registry's
    /// port (<c>host:5001/name</c>) is not a tag.
    /// </summary>
    public static bool IsPinned(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0) return Digest().IsMatch(image[(at + 1)..]);
        var lastSlash = image.LastIndexOf('/');
        var colon = image.IndexOf(':', lastSlash + 1);
        if (colon < 0) return false;
        var tag = image[(colon + 1)..];
        return Tag().IsMatch(tag) && !tag.Equals("latest", StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("registry.example.com/ephemeralci/intake:0.1.0", true)]
    [InlineData("localhost:5001/ephemeralci/intake:dev", true)]
    [InlineData("ghcr.io/acme/intake@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true)]
    [InlineData("localhost:5001/ephemeralci/intake", false)]
    [InlineData("ephemeralci/intake", false)]
    [InlineData("ephemeralci/intake:latest", false)]
    [InlineData("ephemeralci/intake:LATEST", false)]
    [InlineData("ephemeralci/intake@sha256:abc", false)]
    public void Pinning_is_recognised(string image, bool pinned) => Assert.Equal(pinned, IsPinned(image));

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_container_image_is_pinned_and_comes_from_the_configured_registry(string target)
    {
        foreach (var (workload, template) in Manifests.Render(target).PodTemplates())
        {
            foreach (var c in (template.Spec.InitContainers ?? []).Concat(template.Spec.Containers))
            {
                Assert.True(IsPinned(c.Image), $"{workload} {c.Name}: image '{c.Image}' is not pinned by tag or digest");
                Assert.Equal("IfNotPresent", c.ImagePullPolicy);
            }
        }
    }

    public static TheoryData<string> Overlays => [.. Kustomize.Overlays];

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_overlay_maps_every_service_image_to_its_registry_and_release(string overlay)
    {
        // The overlay's `images:` entries, as written: name → (newName, newTag | digest).
        var file = Path.Combine(Repository.Root, "deploy", "kubernetes", overlay, "kustomization.yaml");
        var kustomization = new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).IgnoreUnmatchedProperties().Build().Deserialize<OverlayFile>(File.ReadAllText(file));
        var images = kustomization.Images.ToDictionary(i => i.Name);
        foreach (var deployment in Manifests.Render(overlay).Deployments)
        {
            var name = "ephemeralci/" + deployment.Metadata.Name;
            Assert.True(images.TryGetValue(name, out var image), $"{overlay} does not set the image {name}");
            Assert.True(image.NewTag is not null ^ image.Digest is not null, $"{overlay}: {name} needs exactly one of newTag and digest");
            var expected = image.Digest is not null ? $"{image.NewName}@{image.Digest}" : $"{image.NewName}:{image.NewTag}";
            // Rendered as the overlay says: a base that renamed the image first would make kustomize skip this silently.
            Assert.Equal(expected, Assert.Single(deployment.Spec.Template.Spec.Containers).Image);
        }
    }

    public sealed class OverlayFile
    {
        public List<ImageEntry> Images { get; set; } = [];
    }

    public sealed class ImageEntry
    {
        public string Name { get; set; } = "";
        public string? NewName { get; set; }
        public string? NewTag { get; set; }
        public string? Digest { get; set; }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_runner_template_image_is_pinned(string target)
    {
        var templates = Manifests.Render(target).ConfigMap(RenderedManifests.ControlPlane, "runner-templates");
        foreach (var (file, content) in templates.Data)
        {
            var template = RunnerTemplateLoader.Parse(Path.GetFileNameWithoutExtension(file), content, file).Definition;
            Assert.True(template.Image is not null && IsPinned(template.Image), $"runner template {file}: image '{template.Image}' is not pinned");
        }
    }

    [GeneratedRegex("^sha256:[0-9a-f]{64}$")]
    private static partial Regex Digest();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex Tag();
}
