using System.Diagnostics;
using System.Text.Json.Nodes;

using Xunit;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>
/// The deployment manifest azd reads: the built AppHost run with <c>--publisher manifest</c>, as
/// <c>azd up</c> runs it.
/// </summary>
public static class AspireManifest
{
    public static JsonObject Publish(string infrastructureMode, params (string Name, string Value)[] settings)
    {
        // Same configuration as this test build (bin/<Configuration>/net10.0).
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = framework.Parent!.Name;
        var appHost = Path.Combine(Repository.Root, "AppHost", "bin", configuration, framework.Name, "EphemeralCI.AppHost.dll");
        Assert.True(File.Exists(appHost), $"the AppHost is not built at {appHost}");

        var output = Directory.CreateTempSubdirectory("eci-manifest-");
        try
        {
            var path = Path.Combine(output.FullName, "aspire-manifest.json");
            var start = new ProcessStartInfo("dotnet", [appHost, "--publisher", "manifest", "--output-path", path])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = output.FullName,
            };
            start.Environment["Infrastructure__Mode"] = infrastructureMode;
            foreach (var (name, value) in settings) start.Environment[name] = value;
            foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.Ordinal)).ToList())
            {
                start.Environment.Remove(name);
            }
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"publishing the AppHost failed ({process.ExitCode}): {stdout.Result}{stderr.Result}");
            return (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }
}
