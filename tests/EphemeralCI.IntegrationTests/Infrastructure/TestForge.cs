using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EphemeralCI.IntegrationTests.Infrastructure;

/// <summary>
/// A test forge: bare repositories served by the real <c>git daemon</c> on a loopback port (real git over the network),
/// plus a working clone per repository to make commits, branches, tags and pull-request refs with the real git CLI.
/// It counts the fetches it served (<c>git daemon --verbose</c> logs each upload-pack), and can be stopped and started
/// again on the same port to play a forge that is down.
/// </summary>
public sealed class TestForge : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private Process? _daemon;

    private TestForge(string root, int port)
    {
        Root = root;
        Port = port;
    }

    public string Root { get; }
    public int Port { get; }
    public string Repositories => Path.Combine(Root, "repos");

    /// <summary>For <c>Checkout:UrlTemplate</c>.</summary>
    public string UrlTemplate => $"git://127.0.0.1:{Port}/{{repository}}.git";

    public string UrlOf(string repository) => $"git://127.0.0.1:{Port}/{repository}.git";

    public static async Task<TestForge> StartAsync()
    {
        var root = Path.Combine(Path.GetTempPath(), "eci-test-forge-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(root, "repos"));
        Directory.CreateDirectory(Path.Combine(root, "work"));
        var forge = new TestForge(root, FreePort.Next());
        await forge.StartDaemonAsync();
        return forge;
    }

    /// <summary>upload-pack requests served for <paramref name="repository"/> so far.</summary>
    public int UploadPacks(string repository)
    {
        lock (_log)
        {
            return _log.ToString().Split('\n').Count(l => l.Contains("Request upload-pack", StringComparison.Ordinal) && l.Contains($"/{repository}.git", StringComparison.Ordinal));
        }
    }

    public async Task StartDaemonAsync()
    {
        var psi = new ProcessStartInfo("git")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        // Runs before every request is served: waits while the hold file exists (HoldFetches).
        var hook = Path.Combine(Root, "access-hook.sh");
        File.WriteAllText(hook, $"#!/bin/sh\nwhile [ -e '{HoldFile}' ]; do sleep 0.05; done\nexit 0\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var a in (string[])["daemon", "--reuseaddr", "--export-all", "--verbose", "--informative-errors", $"--base-path={Repositories}",
                     $"--access-hook={hook}", "--listen=127.0.0.1", $"--port={Port}", Repositories])
        {
            psi.ArgumentList.Add(a);
        }
        Isolate(psi);
        _daemon = Process.Start(psi)!;
        _daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _daemon.OutputDataReceived += (_, e) => { };
        _daemon.BeginErrorReadLine();
        _daemon.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_daemon.HasExited)
            {
                await Task.Delay(50);
            }
        }
    }

    private string HoldFile => Path.Combine(Root, "hold");

    /// <summary>Until disposed, every request waits before it is served (a slow forge), so requests made meanwhile overlap for sure.</summary>
    public IDisposable HoldFetches()
    {
        File.WriteAllText(HoldFile, "");
        return new Release(() => File.Delete(HoldFile));
    }

    private sealed class Release(Action release) : IDisposable
    {
        public void Dispose() => release();
    }

    /// <summary>The forge goes down: nothing listens on its port any more.</summary>
    public async Task StopDaemonAsync()
    {
        if (_daemon is null) return;
        _daemon.Kill(entireProcessTree: true);
        await _daemon.WaitForExitAsync();
        _daemon.Dispose();
        _daemon = null;
    }

    /// <summary>A new repository with one commit on main; returns that commit.</summary>
    public string CreateRepository(string repository, IReadOnlyDictionary<string, string>? files = null)
    {
        var bare = Path.Combine(Repositories, repository + ".git");
        Directory.CreateDirectory(bare);
        Git(null, "init", "--bare", "--quiet", "--initial-branch=main", bare);
        var work = WorkOf(repository);
        Directory.CreateDirectory(work);
        Git(work, "init", "--quiet", "--initial-branch=main");
        return Commit(repository, "main", files ?? new Dictionary<string, string> { ["README.md"] = $"# {repository}\n" }, "initial commit");
    }

    public string WorkOf(string repository) => Path.Combine(Root, "work", repository);

    /// <summary>Commits <paramref name="files"/> on <paramref name="branch"/> (created from the current HEAD if new) and pushes it; returns the commit.</summary>
    public string Commit(string repository, string branch, IReadOnlyDictionary<string, string> files, string message)
    {
        var work = WorkOf(repository);
        var exists = Git(work, "branch", "--list", branch).Trim().Length > 0;
        var current = Git(work, "symbolic-ref", "--quiet", "--short", "HEAD").Trim();
        if (current != branch) Git(work, exists ? ["checkout", "--quiet", branch] : ["checkout", "--quiet", "-b", branch]);
        foreach (var (path, content) in files)
        {
            var full = Path.Combine(work, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, content);
        }
        Git(work, "add", "--all");
        Git(work, "commit", "--quiet", "--allow-empty", "-m", message);
        Git(work, "push", "--quiet", "--force", Path.Combine(Repositories, repository + ".git"), $"{branch}:refs/heads/{branch}");
        return Git(work, "rev-parse", "HEAD").Trim();
    }

    /// <summary>Commits a copy of the folder <paramref name="source"/> at <paramref name="path"/> on <paramref name="branch"/> (binary-safe); returns the commit.</summary>
    public string CommitDirectory(string repository, string branch, string source, string path, string message)
    {
        var work = WorkOf(repository);
        var current = Git(work, "symbolic-ref", "--quiet", "--short", "HEAD").Trim();
        if (current != branch) Git(work, "checkout", "--quiet", branch);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(work, path, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
        Git(work, "add", "--all", "--force", path);
        Git(work, "commit", "--quiet", "-m", message);
        Git(work, "push", "--quiet", "--force", Path.Combine(Repositories, repository + ".git"), $"{branch}:refs/heads/{branch}");
        return Git(work, "rev-parse", "HEAD").Trim();
    }

    /// <summary>Points <paramref name="fullRef"/> (e.g. refs/pull/7/head, refs/tags/v1) at <paramref name="commit"/> at the forge.</summary>
    public void SetRef(string repository, string fullRef, string commit) =>
        Git(Path.Combine(Repositories, repository + ".git"), "update-ref", fullRef, commit);

    /// <summary>An annotated tag at the forge.</summary>
    public void Tag(string repository, string name, string commit)
    {
        var work = WorkOf(repository);
        Git(work, "tag", "-a", "-m", name, name, commit);
        Git(work, "push", "--quiet", Path.Combine(Repositories, repository + ".git"), $"refs/tags/{name}:refs/tags/{name}");
    }

    /// <summary>
    /// Adds <paramref name="submodule"/> (a repository of this forge) at <paramref name="path"/> on main, recorded in
    /// <c>.gitmodules</c> as <paramref name="url"/> (default: its forge URL; e.g. <c>../lib.git</c> for a relative one);
    /// returns the new commit.
    /// </summary>
    public string AddSubmodule(string repository, string submodule, string path, string? url = null)
    {
        var work = WorkOf(repository);
        Git(work, "checkout", "--quiet", "main");
        Git(work, "-c", "protocol.file.allow=always", "submodule", "add", "--quiet", Path.Combine(Repositories, submodule + ".git"), path);
        // What a forge repository records: the submodule's forge URL.
        Git(work, "config", "--file", ".gitmodules", $"submodule.{path}.url", url ?? UrlOf(submodule));
        Git(work, "add", "--all");
        Git(work, "commit", "--quiet", "-m", $"add submodule {submodule}");
        Git(work, "push", "--quiet", Path.Combine(Repositories, repository + ".git"), "main:refs/heads/main");
        return Git(work, "rev-parse", "HEAD").Trim();
    }

    public static string Git(string? cwd, params string[] args)
    {
        var psi = new ProcessStartInfo("git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        Isolate(psi);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0 && !(args is ["symbolic-ref", ..]))
        {
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        }
        return stdout.Result;
    }

    private static void Isolate(ProcessStartInfo psi)
    {
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        psi.Environment["GIT_AUTHOR_NAME"] = psi.Environment["GIT_COMMITTER_NAME"] = "Test Forge";
        psi.Environment["GIT_AUTHOR_EMAIL"] = psi.Environment["GIT_COMMITTER_EMAIL"] = "forge@example.test";
    }


    public async ValueTask DisposeAsync()
    {
        await StopDaemonAsync();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
