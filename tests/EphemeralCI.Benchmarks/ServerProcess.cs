using System.Diagnostics;
using System.Reflection;

namespace EphemeralCI.Benchmarks;

/// <summary>The all-in-one server as its own process, as an operator runs it (its built dll), for the benchmarks that measure it whole.</summary>
public static class ServerProcess
{
    public static string ServerDll =>
        typeof(ServerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EphemeralCIServerDll").Value!;

    /// <summary>
    /// Starts the server on <paramref name="dataDir"/> with embedded defaults, except the connection strings in
    /// <paramref name="connectionStrings"/> (name → value); none leaks in from this process's environment.
    /// </summary>
    public static Process Start(Uri address, string dataDir, string adminKey, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? connectionStrings = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                ServerDll,
                $"--urls={address}",
                $"--EphemeralCI:DataDirectory={dataDir}",
                $"--Intake:BootstrapAdminKey={adminKey}",
                "--Logging:LogLevel:Default=Warning",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(ServerDll)!,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase)).ToList()) start.Environment.Remove(key);
        foreach (var (name, value) in connectionStrings ?? new Dictionary<string, string>()) start.Environment[$"ConnectionStrings__{name}"] = value;
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var process = Process.Start(start)!;
        // Drain its output (it logs warnings and errors only) so it never blocks on a full pipe; show it, it matters here.
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } l) Console.Error.WriteLine("server: " + l); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine("server: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static async Task WaitHealthyAsync(HttpClient http, Process server)
    {
        for (var i = 0; i < 480; i++)
        {
            if (server.HasExited) throw new InvalidOperationException($"the server exited with {server.ExitCode}");
            try
            {
                using var health = await http.GetAsync("/health");
                if (health.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException("the server was not healthy within 2 minutes");
    }
}
