using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// /metrics is opt-in on the distributed services (docs/telemetry.md): off in every default rendering,
/// on in all four services with the chart's podMonitor or the kustomize metrics component.
/// </summary>
public sealed class MetricsScrapingTests
{
    private const string Switch = "Telemetry__Prometheus__Enabled";

    private static bool Scraped(V1Deployment d) =>
        d.Spec.Template.Spec.Containers[0].Env.Any(e => e.Name == Switch && e.Value == "true");

    [Theory]
    [MemberData(nameof(TargetData))]
    public void Metrics_are_off_unless_asked_for(string target)
    {
        Assert.DoesNotContain(Manifests.Render(target).Deployments, Scraped);
    }

    public static TheoryData<string> TargetData() => [.. Manifests.Targets];

    [Fact]
    public void The_charts_pod_monitor_turns_metrics_on_in_every_service()
    {
        var text = Helm.RenderText("--set", "podMonitor.enabled=true");
        // The Kubernetes client has no type for the operator's PodMonitor: check it as text, load the rest.
        var documents = text.Split("\n---", StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(documents, d => d.Contains("kind: PodMonitor", StringComparison.Ordinal));
        var rendered = Kustomize.Load(string.Join("\n---", documents.Where(d => !d.Contains("kind: PodMonitor", StringComparison.Ordinal))));
        Assert.All(RenderedManifests.Services, s => Assert.True(Scraped(rendered.Deployment(s)), s));
    }

    [Fact]
    public void The_kustomize_metrics_component_turns_metrics_on_and_annotates_the_pods()
    {
        var overlay = Directory.CreateTempSubdirectory("eci-metrics-overlay-").FullName;
        try
        {
            // Kustomize takes no absolute paths: the overlay names the repository's folders relative to itself.
            string Relative(string path) => Path.GetRelativePath(overlay, Path.Combine(Repository.Root, "deploy", "kubernetes", path));
            File.WriteAllText(Path.Combine(overlay, "kustomization.yaml"), $"""
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources: [{Relative("overlays/production")}]
                components: [{Relative("components/metrics")}]
                """);
            var rendered = Kustomize.Load(Kustomize.RenderText(overlay));
            Assert.All(RenderedManifests.Services, s =>
            {
                var d = rendered.Deployment(s);
                Assert.True(Scraped(d), s);
                Assert.Equal("true", d.Spec.Template.Metadata.Annotations["prometheus.io/scrape"]);
                Assert.Equal("8080", d.Spec.Template.Metadata.Annotations["prometheus.io/port"]);
            });
        }
        finally
        {
            Directory.Delete(overlay, recursive: true);
        }
    }

    [Fact]
    public void The_example_dashboard_queries_only_series_the_services_export()
    {
        var docs = File.ReadAllText(Path.Combine(Repository.Root, "docs", "telemetry.md"));
        // The table lists each instrument's Prometheus name in backticks, e.g. (`eci_jobs_submitted_total`).
        var documented = System.Text.RegularExpressions.Regex.Matches(docs, @"`(eci_[a-z_]+)`").Select(m => m.Groups[1].Value)
            .Concat(System.Text.RegularExpressions.Regex.Matches(docs, @"`eci\.([a-z_.]+)`").Select(m => "eci_" + m.Groups[1].Value.Replace('.', '_')))
            .ToHashSet(StringComparer.Ordinal);
        using var dashboard = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(Repository.Root, "deploy", "grafana", "ephemeralci-dashboard.json")));
        var queries = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => (Panel: p.GetProperty("title").GetString(), Expr: t.GetProperty("expr").GetString()!)))
            .ToList();
        Assert.NotEmpty(queries);
        foreach (var (panel, expr) in queries)
        {
            foreach (System.Text.RegularExpressions.Match series in System.Text.RegularExpressions.Regex.Matches(expr, @"\beci_[a-z_]+"))
            {
                // A histogram's _bucket/_sum/_count and a counter's _total belong to the documented name.
                var name = System.Text.RegularExpressions.Regex.Replace(series.Value, "_(bucket|sum|count)$", "");
                Assert.True(documented.Contains(name) || documented.Contains(name.Replace("_total", "")),
                    $"panel '{panel}' queries {series.Value}, which docs/telemetry.md does not list");
            }
        }
        Assert.Contains(queries, q => q.Expr.Contains("eci_runner_teardown_failures_total", StringComparison.Ordinal));
    }
}
