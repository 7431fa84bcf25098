using System.Diagnostics;
using System.Text.Json;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// Runs the real npm package <c>@actions/cache</c> (tests/EphemeralCI.IntegrationTests/ActionsToolkit,
/// installed by <c>npm ci</c> there) with node, pointed at a cache by the same environment variables a
/// GitHub Actions runner sets. Each instance is one workspace folder, like one runner's checkout.
/// </summary>
public sealed class ActionsToolkitRunner : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    public ActionsToolkitRunner()
    {
        Workspace = Directory.CreateTempSubdirectory("eci-toolkit-ws-").FullName;
        Temp = Directory.CreateTempSubdirectory("eci-toolkit-tmp-").FullName;
    }

    public string Workspace { get; }
    private string Temp { get; }

    public static string FixtureDirectory { get; } = FindFixture();

    /// <summary>Writes <c>data/…</c> files into the workspace (what gets cached).</summary>
    public void WriteData(string name, byte[] content)
    {
        var path = Path.Combine(Workspace, "data", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
    }

    public byte[]? ReadData(string name) => File.Exists(Path.Combine(Workspace, "data", name)) ? File.ReadAllBytes(Path.Combine(Workspace, "data", name)) : null;

    public void ClearData()
    {
        var data = Path.Combine(Workspace, "data");
        if (Directory.Exists(data)) Directory.Delete(data, recursive: true);
    }

    /// <summary>saveCache; the cache id, or -1 when the toolkit did not save (it only warns).</summary>
    /// <param name="settings">More environment for the toolkit (e.g. <c>CACHE_UPLOAD_CHUNK_SIZE</c>).</param>
    public async Task<ToolkitResult> SaveAsync(Uri cache, string token, string protocol, string key, IReadOnlyDictionary<string, string>? settings = null)
    {
        var env = Environment(cache, token, protocol);
        foreach (var (name, value) in settings ?? new Dictionary<string, string>()) env[name] = value;
        return await RunAsync("save-restore.mjs", env, "save", key);
    }

    /// <summary>restoreCache; the matched key, or null on a miss.</summary>
    public async Task<ToolkitResult> RestoreAsync(Uri cache, string token, string protocol, string key, params string[] restoreKeys) =>
        await RunAsync("save-restore.mjs", Environment(cache, token, protocol), ["restore", key, .. restoreKeys]);

    /// <summary>The toolkit's Azure SDK uploading <paramref name="file"/> in blocks of <paramref name="blockSize"/> bytes.</summary>
    public Task<ToolkitResult> UploadBlocksAsync(string signedUrl, string file, int blockSize) =>
        RunAsync("upload-blocks.mjs", new Dictionary<string, string>(), signedUrl, file, blockSize.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private Dictionary<string, string> Environment(Uri cache, string token, string protocol)
    {
        var env = new Dictionary<string, string>
        {
            ["ACTIONS_RUNTIME_TOKEN"] = token,
            ["ACTIONS_RESULTS_URL"] = cache.ToString(),
            ["ACTIONS_CACHE_URL"] = cache.ToString(),
            ["GITHUB_WORKSPACE"] = Workspace,
            ["RUNNER_TEMP"] = Temp,
            ["CACHE_PATHS"] = "data",
        };
        if (protocol == "v2") env["ACTIONS_CACHE_SERVICE_V2"] = "true";
        return env;
    }

    private async Task<ToolkitResult> RunAsync(string script, Dictionary<string, string> env, params string[] args)
    {
        var start = new ProcessStartInfo("node") { WorkingDirectory = Workspace, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(FixtureDirectory, script));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // Nothing from the test runner's environment may point the toolkit elsewhere (GHES detection, proxies).
        foreach (var name in new[] { "GITHUB_SERVER_URL", "ACTIONS_CACHE_SERVICE_V2", "ACTIONS_CACHE_URL", "ACTIONS_RESULTS_URL", "RUNNER_DEBUG", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy" })
        {
            start.Environment.Remove(name);
        }
        foreach (var (name, value) in env) start.Environment[name] = value;
        start.Environment["NODE_PATH"] = Path.Combine(FixtureDirectory, "node_modules");

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Timeout);
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"node {script} printed no RESULT line (exit {process.ExitCode}):\n{output}");
        return new ToolkitResult(JsonDocument.Parse(line["RESULT ".Length..]).RootElement.Clone(), output);
    }

    private static string FindFixture()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "EphemeralCI.IntegrationTests", "ActionsToolkit");
            if (Directory.Exists(candidate))
            {
                return Directory.Exists(Path.Combine(candidate, "node_modules", "@actions", "cache"))
                    ? candidate
                    : throw new InvalidOperationException($"The @actions/cache fixture is not installed: run `npm ci` in {candidate} (.ci/run does).");
            }
        }
        throw new InvalidOperationException("tests/EphemeralCI.IntegrationTests/ActionsToolkit not found above " + AppContext.BaseDirectory);
    }

    public void Dispose()
    {
        Directory.Delete(Workspace, recursive: true);
        Directory.Delete(Temp, recursive: true);
    }
}

/// <summary>What a script printed: its RESULT object, and the whole output for assertion messages.</summary>
public sealed record ToolkitResult(JsonElement Result, string Output)
{
    public long? Id => Result.TryGetProperty("id", out var id) ? id.GetInt64() : null;
    public string? Hit => Result.TryGetProperty("hit", out var hit) ? hit.GetString() : null;
    public string? Error => Result.TryGetProperty("error", out var e) ? e.GetString() : null;
    public override string ToString() => Output;
}
