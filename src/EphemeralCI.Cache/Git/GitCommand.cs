using System.Diagnostics;
using System.Text;

namespace EphemeralCI.Cache.Git;

/// <summary>The outcome of one git command: its exit code and what it wrote (each capped).</summary>
public sealed record GitResult(int ExitCode, string Output, string Error)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>
/// Runs the real <c>git</c> CLI with a clean configuration: no user or system config, no terminal prompt, and
/// extra settings passed as <c>GIT_CONFIG_KEY_n</c>/<c>GIT_CONFIG_VALUE_n</c> in its environment, so a credential
/// given that way is never on a command line (<c>/proc/*/cmdline</c>) and never written to a repository's config;
/// the host's .NET settings (environment variables with <c>__</c>, which may hold credentials) are not passed on.
/// </summary>
public static class GitCommand
{
    private const int MaxCaptured = 64 * 1024;

    /// <summary>The environment every git command gets, plus <paramref name="config"/> as environment-only config.</summary>
    public static void Prepare(ProcessStartInfo psi, IEnumerable<KeyValuePair<string, string>>? config = null)
    {
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        psi.Environment["GIT_TERMINAL_PROMPT"] = "0";
        psi.Environment["GIT_ASKPASS"] = "/bin/false";
        psi.Environment["SSH_ASKPASS"] = "/bin/false";
        psi.Environment["LC_ALL"] = "C";
        // The host's own settings (Checkout__Token, ConnectionStrings__…) are not git's business.
        foreach (var name in psi.Environment.Keys.Where(k => k.Contains("__", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }
        foreach (var name in (string[])["GIT_DIR", "GIT_WORK_TREE", "GIT_TRACE", "GIT_TRACE_PACKET", "GIT_TRACE_CURL", "GIT_CURL_VERBOSE", "GIT_SSH_COMMAND"])
        {
            psi.Environment.Remove(name);
        }
        var n = 0;
        foreach (var (key, value) in config ?? [])
        {
            psi.Environment[$"GIT_CONFIG_KEY_{n}"] = key;
            psi.Environment[$"GIT_CONFIG_VALUE_{n}"] = value;
            n++;
        }
        psi.Environment["GIT_CONFIG_COUNT"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Runs git with <paramref name="args"/>; killed (whole tree) when <paramref name="timeout"/> passes or <paramref name="ct"/> fires.</summary>
    public static async Task<GitResult> RunAsync(string? workingDirectory, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct,
        IEnumerable<KeyValuePair<string, string>>? config = null)
    {
        var psi = new ProcessStartInfo("git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        Prepare(psi, config);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("git did not start");
        process.StandardInput.Close();
        var stdout = CaptureAsync(process.StandardOutput);
        var stderr = CaptureAsync(process.StandardError);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync(CancellationToken.None);
            ct.ThrowIfCancellationRequested();
            throw new TimeoutException($"git {args.FirstOrDefault()} did not finish within {timeout.TotalSeconds:0} s");
        }
        return new GitResult(process.ExitCode, await stdout, await stderr);
    }

    private static async Task<string> CaptureAsync(StreamReader reader)
    {
        var text = new StringBuilder();
        var buffer = new char[8192];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            if (text.Length < MaxCaptured) text.Append(buffer, 0, Math.Min(read, MaxCaptured - text.Length));
        }
        return text.ToString();
    }
}
