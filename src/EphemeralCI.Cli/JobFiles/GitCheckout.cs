using System.Diagnostics;

namespace EphemeralCI.Cli.JobFiles;

/// <summary>What git says about a checkout: where it came from and what HEAD is.</summary>
public sealed record GitFacts(string? OriginUrl, string? HeadRef, string? HeadSha);

public interface IGitCheckout
{
    /// <summary>Facts about the checkout holding <paramref name="directory"/>; null when it is not one (or git is missing).</summary>
    GitFacts? Read(string directory);
}

/// <summary>Asks the git command line. Each question is one short `git` process with no shell in between.</summary>
public sealed class GitCommandLine : IGitCheckout
{
    public GitFacts? Read(string directory)
    {
        if (Git(directory, "rev-parse", "--is-inside-work-tree") != "true") return null;
        return new GitFacts(
            Git(directory, "remote", "get-url", "origin"),
            Git(directory, "symbolic-ref", "-q", "HEAD"),
            Git(directory, "rev-parse", "HEAD"));
    }

    private static string? Git(string directory, params string[] args)
    {
        var start = new ProcessStartInfo("git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 && output.Trim() is { Length: > 0 } value ? value : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // git is not installed
        }
    }

    /// <summary>
    /// "owner/name" from an origin URL: https://host/owner/name(.git), ssh://git@host[:port]/owner/name,
    /// or scp-like git@host:owner/name. Null for a local path, which names no repository a runner could fetch.
    /// </summary>
    public static string? RepositoryFromRemote(string? url)
    {
        if (string.IsNullOrWhiteSpace(url)) return null;
        url = url.Trim();
        string path;
        if (url.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.IsFile || string.IsNullOrEmpty(uri.Host)) return null;
            path = Uri.UnescapeDataString(uri.AbsolutePath);
        }
        else
        {
            // scp-like syntax: [user@]host:path (a colon before any slash).
            var colon = url.IndexOf(':');
            var slash = url.IndexOf('/');
            if (colon <= 0 || (slash >= 0 && slash < colon)) return null;
            path = url[(colon + 1)..];
        }
        path = path.Trim('/');
        if (path.EndsWith(".git", StringComparison.Ordinal)) path = path[..^4];
        return path.Contains('/') ? path : null;
    }
}
