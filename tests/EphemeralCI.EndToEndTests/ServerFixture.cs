using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Starts the all-in-one server as its own process, exactly as an operator would (its built dll),
/// with nothing but embedded defaults: SQLite files, the in-memory bus, a cache folder, bubblewrap
/// runners — in a fresh data folder. It can be killed and started again on the same folder.
/// </summary>
public partial class ServerFixture : IEphemeralCISystem, IAsyncLifetime
{
    public const string AdminKey = "eci_e2e_server_bootstrap_admin_key_0123456789abcdefghijk";
    /// <summary>A repository allowed one runner at a time (<c>Provisioner:Limits:Repositories</c>).</summary>
    public const string LimitedRepository = "webui/limited-one";
    public static readonly string SecretsAdminToken = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private readonly string _cgroupName = "eci-e2e-srv-" + Guid.NewGuid().ToString("N")[..8];
    private int _outputLines;
    private readonly StringBuilder _output = new();
    private Process? _server;

    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "eci-e2e-server-" + Guid.NewGuid().ToString("N")[..8]);
    public string RunnerWorkRoot => Path.Combine(DataDirectory, "runners");
    public Uri BaseAddress { get; } = new($"http://127.0.0.1:{FreePort.Next()}");
    public HttpClient Intake { get; private set; } = null!;
    public HttpClient SecretsAdmin { get; private set; } = null!;

    /// <summary>What the server printed so far (stdout and stderr), for assertion messages.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>
    /// False: the server runs with the defaults an operator gets (the shared cgroup parent name), as a
    /// neighbour of every other such server on this machine. True (default): a cgroup parent of its own.
    /// </summary>
    protected bool OwnCgroupName { get; init; } = true;

    /// <summary>More command-line settings, e.g. a faster reconciler.</summary>
    protected List<string> ExtraArguments { get; } = [];

    /// <summary>More environment variables for the server process, e.g. where to export telemetry.</summary>
    protected Dictionary<string, string> ExtraEnvironment { get; } = [];

    /// <summary>The lines printed since <paramref name="mark"/> (from <see cref="OutputMark"/>).</summary>
    public IReadOnlyList<string> OutputSince(int mark)
    {
        lock (_output) return _output.ToString().Split('\n').Skip(mark).ToList();
    }

    /// <summary>How many lines the server printed so far; pass it to <see cref="OutputSince"/>.</summary>
    public int OutputMark { get { lock (_output) return _outputLines; } }

    public async Task InitializeAsync()
    {
        Intake = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(100) };
        Intake.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        SecretsAdmin = new HttpClient { BaseAddress = BaseAddress };
        SecretsAdmin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", SecretsAdminToken);
        await StartAsync();
    }

    public static string ServerDll =>
        typeof(ServerFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EphemeralCIServerDll").Value!;

    /// <summary>Starts the server on <see cref="DataDirectory"/> and waits until it is healthy.</summary>
    public async Task StartAsync()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                ServerDll,
                $"--urls={BaseAddress}",
                $"--EphemeralCI:DataDirectory={DataDirectory}",
                $"--Intake:BootstrapAdminKey={AdminKey}",
                $"--SecretsBroker:AdminToken={SecretsAdminToken}",
                // One repository with a limit of one runner, so a test can see a job wait (and why); no other test uses it.
                $"--Provisioner:Limits:Repositories:{LimitedRepository}=1",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(ServerDll)!,
        };
        // Its own cgroup parent unless it is to be a neighbour with the defaults.
        if (OwnCgroupName) start.ArgumentList.Add($"--Provisioner:LocalSandbox:CgroupName={_cgroupName}");
        foreach (var argument in ExtraArguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in ExtraEnvironment) start.Environment[name] = value;
        // Embedded defaults only: no connection string may leak in from the test environment.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }
        _server = Process.Start(start)!;
        _server.OutputDataReceived += (_, e) => Record(e.Data);
        _server.ErrorDataReceived += (_, e) => Record(e.Data);
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();

        using var probe = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            if (_server.HasExited) throw new InvalidOperationException($"the server exited with {_server.ExitCode}:\n{Output}");
            try
            {
                using var health = await probe.GetAsync("/health");
                if (health.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the server was not healthy within 2 minutes:\n{Output}");
            await Task.Delay(250);
        }
    }

    private void Record(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.Append(line).Append('\n');
            _outputLines++;
        }
    }

    /// <summary>SIGKILL: the process gets no chance to clean up, as in a crash or an OOM kill.</summary>
    public async Task KillAsync()
    {
        if (_server is null) return;
        _server.Kill(entireProcessTree: false);
        await _server.WaitForExitAsync();
        _server.Dispose();
        _server = null;
    }

    /// <summary>SIGTERM and wait: a graceful stop, as systemd or Kubernetes does it.</summary>
    public async Task StopAsync()
    {
        if (_server is null) return;
        _ = Kill(_server.Id, 15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await _server.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { _server.Kill(entireProcessTree: true); }
        _server.Dispose();
        _server = null;
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        Intake?.Dispose();
        SecretsAdmin?.Dispose();
        try { Directory.Delete(DataDirectory, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "all-in-one server";
}
