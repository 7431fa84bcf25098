using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>The host paths of one job's sandbox.</summary>
public sealed record SandboxLayout(
    Guid JobId,
    string WorkspaceDirectory,
    string ControlDirectory,
    string AgentDirectory,
    /// <summary>The dotnet host that runs the managed agent; null runs the native (ahead-of-time compiled) agent on its own.</summary>
    string? DotnetPath,
    /// <summary>Null: the host's /usr read-only under an empty tmpfs root. Else the job's own overlay of a base root.</summary>
    IReadOnlyList<RootEntry>? Root = null,
    /// <summary>The template's network mode; <c>egress</c> keeps the network namespace the sandbox is started in (the job's own, see EgressNetwork).</summary>
    string Network = SandboxCommandBuilder.ControlPlaneNetwork,
    /// <summary>The template's <c>sandbox.allowUserNamespaces</c>: steps may create nested user namespaces.</summary>
    bool AllowUserNamespaces = false);

/// <summary>
/// Host files the launching shell opens as the sandbox's descriptors (see <see cref="SandboxCommandBuilder.JoinCgroupThenExec"/>):
/// bubblewrap's options, its system call filter, and the directory that becomes the agent's private TMPDIR.
/// All outside every path bound into the sandbox.
/// </summary>
public sealed record SandboxLaunchFiles(string Arguments, string SeccompFilter, string AgentTemp);

/// <summary>
/// Builds the bubblewrap argument list for one job's sandbox. Pure (the filesystem is asked only
/// through <c>exists</c>), so every isolation flag is checked by unit tests.
/// </summary>
public static class SandboxCommandBuilder
{
    public const int SandboxUid = 1000;
    public const int SandboxGid = 1000;
    public const string WorkspacePath = "/workspace";
    public const string AgentPath = "/opt/eci/agent";
    public const string ControlPath = "/run/eci";
    public const string IntakeSocketPath = ControlPath + "/intake.sock";
    public const string SecretsSocketName = "secrets.sock";
    public const string SecretsSocketPath = ControlPath + "/" + SecretsSocketName;
    public const string CacheSocketName = "cache.sock";
    public const string CacheSocketPath = ControlPath + "/" + CacheSocketName;
    public const string AgentAssembly = "EphemeralCI.RunnerAgent.dll";
    /// <summary>The same agent compiled ahead of time: no runtime to bind in, no JIT at a job's start.</summary>
    public const string NativeAgent = "EphemeralCI.RunnerAgent";
    public const string SandboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    public const string NoNetwork = "none";
    public const string ControlPlaneNetwork = "control-plane";
    public const string EgressNetwork = "egress";

    /// <summary>bubblewrap reads its options from this descriptor (--args), so no host path is on its command line, which is /proc/1/cmdline inside.</summary>
    public const int ArgumentsFd = 3;
    /// <summary>The compiled system call filter (--seccomp).</summary>
    public const int SeccompFd = 4;
    /// <summary>
    /// An open host directory the agent alone uses as TMPDIR, through its own /proc/self/fd link: it is
    /// bound nowhere in the sandbox and the agent marks the descriptor close-on-exec, so no step can
    /// name it (a step's /proc/self is the step, and the agent's /proc entries are closed to it).
    /// </summary>
    public const int AgentTempFd = 5;
    public const string AgentTempPath = "/proc/self/fd/5";
    /// <summary>Where the managed agent's dotnet is bound when it is not the host's /usr one: its host path stays off the command line.</summary>
    public const string DotnetPath = "/opt/eci/dotnet";

    /// <summary>Merged-/usr top-level links; each is created only if the host has it as a link into /usr.</summary>
    public static readonly IReadOnlyList<string> UsrLinks = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

    /// <summary>
    /// The only host files of /etc a job sees: users and groups (bash, id), name resolution, TLS
    /// roots, time zone, the dynamic linker cache and Debian's alternatives. Never shadow files.
    /// </summary>
    public static readonly IReadOnlyList<string> EtcFiles =
    [
        "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf",
        "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/ld.so.cache", "/etc/alternatives",
    ];

    /// <param name="exists">Whether a host path exists (files, directories or links).</param>
    /// <param name="linkTarget">The target of a host symlink, or null if the path is not a link.</param>
    public static IReadOnlyList<string> Build(
        SandboxLayout layout,
        Func<string, bool> exists,
        Func<string, string?> linkTarget,
        IReadOnlyList<string>? command = null)
    {
        var args = new List<string>
        {
            // Every namespace; --unshare-user on its own too so a kernel without user namespaces
            // fails loudly instead of silently running with the host's user (the "-try" in --unshare-all).
            "--unshare-all", "--unshare-user",
            "--uid", SandboxUid.ToString(), "--gid", SandboxGid.ToString(),
            // No nested user namespace: inside one a step would hold CAP_SYS_ADMIN and CAP_NET_ADMIN over
            // kernel code (nf_tables, mounts). bubblewrap caps the count at the one the sandbox is in.
            "--disable-userns",
            // The system call filter (SeccompPolicy), applied to bubblewrap's init and everything it starts.
            "--seccomp", SeccompFd.ToString(),
            "--hostname", "eci-runner",
            "--die-with-parent", "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
            // A fresh, empty root: only what is bound below exists.
            "--tmpfs", "/",
        };
        // none and control-plane: a new, empty network namespace (loopback only). egress: the job's
        // own namespace, prepared by the provisioner and entered before bubblewrap starts.
        if (layout.Network == EgressNetwork) args.Insert(args.IndexOf("--unshare-user") + 1, "--share-net");
        if (layout.AllowUserNamespaces) args.Remove("--disable-userns");
        if (layout.Root is { } root)
        {
            // The job's private overlay of the template's base root: writable, and gone with the job.
            foreach (var entry in root)
            {
                if (entry.LinkTarget is { } target) args.AddRange(["--symlink", target, "/" + entry.Name]);
                else args.AddRange(["--bind", entry.HostDirectory!, "/" + entry.Name]);
            }
        }
        else
        {
            args.AddRange(["--ro-bind", "/usr", "/usr"]);
            foreach (var name in UsrLinks)
            {
                var target = linkTarget("/" + name);
                if (target is not null && target.TrimStart('/').StartsWith("usr/", StringComparison.Ordinal))
                {
                    args.AddRange(["--symlink", target.TrimStart('/'), "/" + name]);
                }
            }
            args.AddRange(["--dir", "/etc"]);
            foreach (var path in EtcFiles.Where(exists))
            {
                args.AddRange(["--ro-bind", path, path]);
            }
        }
        args.AddRange(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);

        // A dotnet outside /usr (e.g. ~/.dotnet) must be bound in to run the managed agent; a base root
        // has its own /usr, without our dotnet, so it is bound then too. At /opt/eci/dotnet, not its host
        // path: the muxer finds its runtimes beside itself wherever it is.
        if (SandboxDotnetRoot(layout) is { } dotnetRoot && dotnetRoot != Path.GetDirectoryName(layout.DotnetPath))
        {
            args.AddRange(["--ro-bind", Path.GetDirectoryName(layout.DotnetPath)!, dotnetRoot]);
        }

        args.AddRange(["--bind", layout.WorkspaceDirectory, WorkspacePath]);
        args.AddRange(["--ro-bind", layout.AgentDirectory, AgentPath]);
        // Read-only: the agent can connect to the socket but not replace it.
        args.AddRange(["--ro-bind", layout.ControlDirectory, ControlPath]);
        // The tmpfs root holds only mount points and links; read-only so nothing lands outside the overlays and /tmp.
        args.AddRange(["--remount-ro", "/"]);
        args.AddRange(["--chdir", WorkspacePath]);

        foreach (var (key, value) in Environment(layout))
        {
            args.AddRange(["--setenv", key, value]);
        }

        args.Add("--");
        args.AddRange(command ?? AgentCommand(layout));
        return args;
    }

    /// <summary>The directory of the managed agent's dotnet inside the sandbox, or null (native agent).</summary>
    private static string? SandboxDotnetRoot(SandboxLayout layout)
    {
        if (layout.DotnetPath is null) return null;
        var hostRoot = Path.GetDirectoryName(layout.DotnetPath)!;
        return layout.Root is null && hostRoot.StartsWith("/usr/", StringComparison.Ordinal) ? hostRoot : DotnetPath;
    }

    public static IReadOnlyList<string> AgentCommand(SandboxLayout layout) =>
        SandboxDotnetRoot(layout) is { } dotnetRoot
            ? [Path.Combine(dotnetRoot, Path.GetFileName(layout.DotnetPath)!), $"{AgentPath}/{AgentAssembly}"]
            : [$"{AgentPath}/{NativeAgent}"];

    /// <summary>
    /// Splits <see cref="Build"/>'s list into bubblewrap's options (which go through <see cref="ArgumentsFd"/>)
    /// and the command (which --args cannot carry). Build puts "--" right before the command and no option value is "--".
    /// </summary>
    public static (IReadOnlyList<string> Options, IReadOnlyList<string> Command) Split(IReadOnlyList<string> args)
    {
        var separator = args.ToList().IndexOf("--");
        if (separator < 0) throw new ArgumentException("no '--' before the command", nameof(args));
        return (args.Take(separator).ToList(), args.Skip(separator + 1).ToList());
    }

    /// <summary>The --args file: each option followed by a NUL byte.</summary>
    public static byte[] ArgumentsFile(IReadOnlyList<string> options) =>
        System.Text.Encoding.UTF8.GetBytes(string.Concat(options.Select(o =>
            o.Contains('\0') ? throw new ArgumentException($"option '{o}' contains a NUL byte", nameof(options)) : o + "\0")));

    /// <summary>
    /// The argv (after /bin/sh) of a shell that writes its own pid into each cgroup.procs file, opens
    /// the launch files as the sandbox's descriptors and deletes the two it alone needed, then becomes
    /// bubblewrap (exec keeps the pid) with nothing but <c>--args 3 -- command</c> on its command line.
    /// So the sandbox and all it starts are in the job's cgroup from the first instruction, and neither
    /// the host's /proc nor the job's /proc/1/cmdline shows a host path.
    /// </summary>
    /// <param name="bwrapArgs">What <see cref="Build"/> returned.</param>
    /// <param name="enterFirst">A command that runs bubblewrap in another namespace (nsenter --net=… --), or null.</param>
    /// <param name="parentPid">With <see cref="DieWithParent"/>: the provisioner's pid; the shell runs nothing if its parent is another (already gone).</param>
    public static IReadOnlyList<string> JoinCgroupThenExec(IReadOnlyList<string> cgroupProcsFiles, string bwrapPath, IReadOnlyList<string> bwrapArgs, SandboxLaunchFiles files, IReadOnlyList<string>? enterFirst = null, int? parentPid = null)
    {
        foreach (var file in cgroupProcsFiles.Concat([files.Arguments, files.SeccompFilter, files.AgentTemp]))
        {
            if (file.Contains('\'') || !file.StartsWith('/')) throw new ArgumentException($"unexpected host path '{file}'", nameof(cgroupProcsFiles));
        }
        // 125: the cgroup could not be joined or a launch file opened; the job must not run unconfined.
        // $PPID is read when the shell starts, after setpriv set the death signal: a parent that died
        // before that shows as another pid here (init, a subreaper), and nothing starts.
        var script = (parentPid is { } ppid ? $"[ \"$PPID\" = {ppid} ] || exit 125; " : "") + string.Concat(cgroupProcsFiles.Select(f => $"echo $$ > '{f}' || exit 125; ")) +
            $"exec {ArgumentsFd}< '{files.Arguments}' {SeccompFd}< '{files.SeccompFilter}' {AgentTempFd}< '{files.AgentTemp}' || exit 125; " +
            $"rm -f '{files.Arguments}' '{files.SeccompFilter}'; exec \"$@\"";
        var (_, command) = Split(bwrapArgs);
        return ["-c", script, "eci-sandbox", .. enterFirst ?? [], bwrapPath, "--args", ArgumentsFd.ToString(), "--", .. command];
    }

    /// <summary>
    /// The whole command line of a sandbox launch that dies with the provisioner from its first
    /// instruction: <c>setpriv --pdeathsig KILL -- /bin/sh …</c>. bubblewrap's --die-with-parent is set
    /// only once bubblewrap runs, after the shell joined the cgroup and opened the launch files; a
    /// provisioner killed in between left a shell that went on to exec bubblewrap with init as its
    /// parent, and a sandbox no one would ever kill. The signal is kept across exec (none of setpriv,
    /// sh, nsenter or bubblewrap is set-user-ID), so the shell, nsenter and bubblewrap all carry it,
    /// and <see cref="JoinCgroupThenExec"/>'s parent check closes the moment before setpriv set it.
    /// </summary>
    /// <param name="shellArgv">What <see cref="JoinCgroupThenExec"/> returned (with its parentPid).</param>
    public static IReadOnlyList<string> DieWithParent(IReadOnlyList<string> shellArgv) => ["--pdeathsig", "KILL", "--", "/bin/sh", .. shellArgv];

    /// <summary>
    /// Writes the launch files into <paramref name="directory"/> (a host directory of the job that is
    /// bound nowhere in the sandbox) and creates the agent's temp directory there. Created exclusively
    /// and owner-only, so nothing planted beforehand is followed or read.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static SandboxLaunchFiles WriteLaunchFiles(string directory, IReadOnlyList<string> bwrapArgs, ReadOnlySpan<byte> seccompFilter)
    {
        var files = new SandboxLaunchFiles(Path.Combine(directory, "bwrap.args"), Path.Combine(directory, "seccomp.bpf"), Path.Combine(directory, "agent-tmp"));
        WriteNew(files.Arguments, ArgumentsFile(Split(bwrapArgs).Options));
        WriteNew(files.SeccompFilter, seccompFilter);
        Directory.CreateDirectory(files.AgentTemp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return files;

        static void WriteNew(string path, ReadOnlySpan<byte> content)
        {
            // CreateNew is O_CREAT|O_EXCL: fails on anything already there, a symlink included.
            using var stream = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            stream.Write(content);
        }
    }

    /// <summary>The agent's whole environment (bubblewrap clears the rest). The job token is not here: it comes on stdin.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Environment(SandboxLayout layout) =>
    [
        new("PATH", SandboxPath),
        new("HOME", "/tmp"),
        new("LANG", "C.UTF-8"),
        new("CI", "true"),
        new(RunnerEnvironment.JobId, layout.JobId.ToString()),
        new(RunnerEnvironment.Workspace, WorkspacePath),
        new(RunnerEnvironment.IntakeSocket, IntakeSocketPath),
        new(RunnerEnvironment.SecretsSocket, SecretsSocketPath),
        new(RunnerEnvironment.CacheSocket, CacheSocketPath),
        new("DOTNET_CLI_TELEMETRY_OPTOUT", "1"),
        new("DOTNET_NOLOGO", "1"),
        // The managed agent's runtime would otherwise open a diagnostics socket (/tmp/dotnet-diagnostic-*)
        // through which a step could attach a profiler and read the job token from the agent.
        new("DOTNET_EnableDiagnostics", "0"),
        // The agent's own temp files (cache archives between hashing and upload, step scripts) where no
        // step can reach them; steps get TMPDIR=/tmp from the agent. See AgentTempFd.
        new("TMPDIR", AgentTempPath),
    ];
}
