using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.Versioning;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Cgroups;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Seccomp;
using EphemeralCI.Provisioner.Ownership;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// Runners as bubblewrap sandboxes on this machine. Each sandbox runs in a cgroup of its own
/// (memory, process and CPU limits from the template) which it joins before bubblewrap starts, so
/// nothing of the job ever runs outside it; the kill is cgroup.kill on that group, which no
/// daemon, double fork or new session escapes. The sandbox is also a new PID namespace whose init
/// is bubblewrap: if bubblewrap dies the kernel kills everything inside it.
/// Everything it makes on the machine carries this installation's id (cgroup parent, work root
/// marker, network names), and its sweeps touch nothing else: neighbours on one host never collide.
/// What one sandbox has on the machine is owned by its <see cref="Sandbox"/>, which removes it in one
/// path; this class composes the parts (prerequisites, layout, warm aliases, relay, spawn, kill, sweep).
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class LocalSandboxBackend(
    IOptions<LocalSandboxOptions> options,
    IntakeEndpoint intake,
    Installation installation,
    ILogger<LocalSandboxBackend> logger) : IRunnerBackend, IAsyncDisposable
{
    public const string BackendName = "local";
    private static readonly UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<Guid, Sandbox> _live = new();
    // Jobs between "row written" and "sandbox registered": the reconciler must not take their fresh directories for leftovers.
    private readonly ConcurrentDictionary<Guid, byte> _starting = new();
    // Job id → the warm sandbox it was handed; everything on the machine is named by the sandbox's id.
    private readonly ConcurrentDictionary<Guid, Guid> _aliases = new();
    private readonly LocalSandboxOptions _options = options.Value;
    private JobCgroups? _cgroups;
    private string? _cgroupProblem;
    private readonly Lock _cgroupInit = new();
    private EgressNetwork? _egress;
    private readonly SandboxSpawner _spawner = new();
    private string? _workRoot;
    private volatile bool _workRootReady;
    // Things of unknown ownership are reported once each, never touched.
    private readonly ConcurrentDictionary<string, byte> _reported = new(StringComparer.Ordinal);

    /// <summary>The egress networks of this instance (made on first use: the pool is validated then, and a bad one fails that job's start with the reason).</summary>
    private EgressNetwork Egress => LazyInitializer.EnsureInitialized(ref _egress, () =>
    {
        IReadOnlyList<System.Net.IPAddress> dns = _options.EgressDnsServers is { } configured
            ? configured.Select(System.Net.IPAddress.Parse).ToList()
            : EgressNetwork.HostResolvers();
        return new EgressNetwork(installation.Id.ToString("N"), new EgressAddressPool(_options.EgressAddressPool, installation.Id), dns, logger);
    });

    /// <summary>The job cgroups, set up on first use; null (with <see cref="_cgroupProblem"/>) when this machine has none usable.</summary>
    private JobCgroups? Cgroups
    {
        get
        {
            lock (_cgroupInit)
            {
                if (_cgroups is not null || _cgroupProblem is not null) return _cgroups;
                try
                {
                    _cgroups = JobCgroups.Open(_options.CgroupName, installation.Tag, logger);
                    logger.LogInformation("Job cgroups: {Mode} layout under {Parent}", _cgroups.Layout.Mode, _cgroups.Layout.UnifiedParent);
                }
                catch (CgroupUnavailableException ex)
                {
                    _cgroupProblem = $"no usable cgroups for per-job limits: {ex.Message}";
                }
                return _cgroups;
            }
        }
    }

    /// <summary>The job cgroups; only after <see cref="MissingPrerequisite"/> returned null.</summary>
    public JobCgroups JobCgroups => Cgroups ?? throw new InvalidOperationException(_cgroupProblem);

    public string Name => BackendName;

    public bool RunnersAreMachineBound => true;

    /// <summary>This installation's work root: the configured one, else a folder named by the installation.</summary>
    public string WorkRootDirectory => _workRoot ??= Path.GetFullPath(
        string.IsNullOrWhiteSpace(_options.WorkRoot) ? WorkRoot.DefaultFor(installation.Tag) : _options.WorkRoot);

    public string JobDirectory(Guid jobId) => SandboxDirectory(SandboxIdOf(jobId));
    private string SandboxDirectory(Guid sandboxId) => Path.Combine(WorkRootDirectory, sandboxId.ToString());
    public string WorkspaceDirectory(Guid jobId) => Path.Combine(JobDirectory(jobId), "workspace");
    public string ControlDirectory(Guid jobId) => Path.Combine(JobDirectory(jobId), "control");

    /// <summary>Null when the machine can run sandboxes, else what is missing and how to fix it.</summary>
    public string? MissingPrerequisite()
    {
        if (!File.Exists(_options.BwrapPath))
        {
            return $"bubblewrap was not found at '{_options.BwrapPath}': install it (apt-get install bubblewrap) or set {LocalSandboxOptions.Section}:BwrapPath";
        }
        if (!File.Exists(_options.SetprivPath))
        {
            return $"setpriv was not found at '{_options.SetprivPath}': install util-linux (apt-get install util-linux) or set {LocalSandboxOptions.Section}:SetprivPath";
        }
        if (_options.AgentHost() is { } dotnet)
        {
            var agent = Path.Combine(_options.AgentDirectory, SandboxCommandBuilder.AgentAssembly);
            if (!File.Exists(agent))
            {
                return $"the runner agent was not found in '{_options.AgentDirectory}': build the provisioner (it copies the agent into runner-agent/) or set {LocalSandboxOptions.Section}:AgentDirectory";
            }
            if (!File.Exists(dotnet))
            {
                return $"the dotnet host was not found at '{dotnet}': set {LocalSandboxOptions.Section}:DotnetPath";
            }
        }
        if (Cgroups is null) return _cgroupProblem;
        return SeccompFilter.MissingPrerequisite() ?? PreparedWorkRoot();
    }

    /// <summary>The work root, checked until it passes (owner, mode, installation marker): null when usable, else the problem.</summary>
    private string? PreparedWorkRoot()
    {
        if (_workRootReady) return null;
        lock (_cgroupInit)
        {
            var problem = WorkRoot.Prepare(WorkRootDirectory, installation.Id);
            _workRootReady = problem is null;
            return problem;
        }
    }

    /// <summary>The warm sandboxes ready for a job (filled by the <see cref="WarmPool"/>).</summary>
    public WarmSandboxes Warm { get; } = new();

    /// <summary>
    /// Starts the job's runner: on a warm sandbox of its template when one is ready (the job still gets
    /// its own token and a never-used workspace), else cold. A warm one that died or will not take the
    /// job is destroyed, and the job starts cold.
    /// </summary>
    public async Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct)
    {
        if (MissingPrerequisite() is { } missing) throw new RunnerStartException(missing);
        while (Warm.TryTake(launch.TemplateName) is { } sandboxId)
        {
            if (!IsWarmAlive(sandboxId))
            {
                await DestroyWarmAsync(sandboxId, ct);
                continue;
            }
            try
            {
                return await AssignWarmAsync(sandboxId, launch, ct);
            }
            catch (RunnerStartException ex)
            {
                logger.LogWarning("Warm sandbox {SandboxId} could not take job {JobId} ({Reason}); starting cold", sandboxId, launch.JobId, ex.Message);
                break;
            }
        }
        _starting[launch.JobId] = 0;
        try
        {
            var sandbox = await StartSandboxAsync(launch.JobId, launch.Template, launch.JobToken, ct);
            return new RunnerHandle(launch.RunnerId, sandbox.Process!.Id, WaitForExitAsync(sandbox.Process));
        }
        finally
        {
            _starting.TryRemove(launch.JobId, out _);
        }
    }

    /// <summary>
    /// A sandbox started ahead of demand (warm pool): cgroup, network, relay, bubblewrap and the agent
    /// are up; the agent blocks on its standard input until <see cref="AssignWarmAsync"/> writes a job's
    /// token there. Its id stands in for the job id in every name (directory, cgroup, network) for good.
    /// </summary>
    public async Task<Guid> StartWarmAsync(RunnerTemplateDefinition template, CancellationToken ct)
    {
        if (MissingPrerequisite() is { } missing) throw new RunnerStartException(missing);
        var sandboxId = Guid.NewGuid();
        _starting[sandboxId] = 0;
        try
        {
            await StartSandboxAsync(sandboxId, template, token: null, ct);
            return sandboxId;
        }
        finally
        {
            _starting.TryRemove(sandboxId, out _);
        }
    }

    /// <summary>
    /// Hands a warm sandbox to one job: from now on the job's id refers to it, and its agent gets the
    /// job's own token (minted for this job, as for a cold start). Throws <see cref="RunnerStartException"/>
    /// if the sandbox died meanwhile (it is then destroyed; start cold instead).
    /// </summary>
    private async Task<RunnerHandle> AssignWarmAsync(Guid sandboxId, RunnerLaunch launch, CancellationToken ct)
    {
        if (!_live.TryGetValue(sandboxId, out var sandbox) || !sandbox.IsRunning || !_aliases.TryAdd(launch.JobId, sandboxId))
        {
            await DestroyWarmAsync(sandboxId, ct);
            throw new RunnerStartException($"warm sandbox {sandboxId} is gone");
        }
        try
        {
            var stdin = sandbox.Process!.StandardInput;
            await stdin.WriteLineAsync(launch.JobToken.AsMemory(), ct);
            await stdin.FlushAsync(ct);
            stdin.Close();
        }
        catch (IOException ex)
        {
            _aliases.TryRemove(launch.JobId, out _);
            await DestroyWarmAsync(sandboxId, ct);
            throw new RunnerStartException($"warm sandbox {sandboxId} did not take the job: {ex.Message}", ex);
        }
        logger.LogInformation("Job {JobId} runs in warm sandbox {SandboxId} (pid {Pid})", launch.JobId, sandboxId, sandbox.Process.Id);
        return new RunnerHandle(launch.RunnerId, sandbox.Process.Id, WaitForExitAsync(sandbox.Process));
    }

    /// <summary>Whether a warm sandbox is still up (its agent waiting for a job).</summary>
    public bool IsWarmAlive(Guid sandboxId) => _live.TryGetValue(sandboxId, out var sandbox) && sandbox.IsRunning;

    /// <summary>Kills and removes a warm sandbox that never got a job (pool shrinking, shutdown, died).</summary>
    public async Task DestroyWarmAsync(Guid sandboxId, CancellationToken ct)
    {
        var runner = new RunnerRef(sandboxId, sandboxId.ToString(), null);
        await KillAsync(runner, ct);
        await DestroyAsync(runner, ct);
    }

    /// <summary>The sandbox that runs the job: the job's own, or the warm one it was handed.</summary>
    public Guid SandboxIdOf(Guid jobId) => _aliases.TryGetValue(jobId, out var sandboxId) ? sandboxId : jobId;

    private async Task<Sandbox> StartSandboxAsync(Guid key, RunnerTemplateDefinition template, string? token, CancellationToken ct)
    {
        var target = intake.Resolve();
        var secretsBroker = intake.ResolveSecretsBroker();
        var cache = intake.ResolveCache();
        var sideServices = new Dictionary<string, Uri>();
        if (secretsBroker is not null) sideServices[SandboxCommandBuilder.SecretsSocketName] = secretsBroker;
        if (cache is not null) sideServices[SandboxCommandBuilder.CacheSocketName] = cache;

        var layout = new SandboxLayout(
            key,
            WorkspaceDirectory(key),
            ControlDirectory(key),
            Path.GetFullPath(_options.AgentDirectory),
            _options.AgentHost(),
            Network: template.Network,
            AllowUserNamespaces: template.Sandbox?.AllowUserNamespaces == true);

        var directory = SandboxDirectory(key);
        var sandbox = new Sandbox(key, directory, _cgroups, _egress)
        {
            Resources = template.Resources,
        };
        try
        {
            // Fresh every time: whatever a crashed earlier attempt left is not this job's.
            Sandbox.DeleteTree(directory);
            // Owner-only directories: uid 1000 inside the sandbox is our own uid outside, so the job
            // can write its workspace while no other host user can look in. They are bound into the
            // sandbox by path: each is checked to be the directory just made, not a link put in its place.
            foreach (var dir in new[] { directory, layout.WorkspaceDirectory, layout.ControlDirectory })
            {
                Directory.CreateDirectory(dir, OwnerOnly);
                WorkRoot.VerifyCreated(dir);
            }
            if (!string.IsNullOrWhiteSpace(template.RootFilesystem))
            {
                layout = layout with { Root = OverlayRoot.Mount(template.RootFilesystem, directory, key) };
            }

            IReadOnlyList<string>? enterNetwork = null;
            if (layout.Network == SandboxCommandBuilder.EgressNetwork)
            {
                // Owned before it exists: a creation that fails halfway is removed with the rest.
                sandbox.Egress = Egress;
                var network = await sandbox.Egress.CreateAsync(key, ct);
                enterNetwork = [EgressNetwork.NsenterPath, "--net=" + EgressNetwork.NamespacePath(network), "--"];
            }
            var cgroupProcs = JobCgroups.Create(key, template.Resources);
            // In every network mode the sockets answer only the agent process (see ControlPlaneRelay.Start),
            // and only the runner routes of each (RelayRoutes): the steps never reach the control plane.
            sandbox.Relay = ControlPlaneRelay.Start(Path.Combine(layout.ControlDirectory, "intake.sock"), target, logger,
                sideServices,
                agentOnly: true);
            var args = SandboxCommandBuilder.Build(layout, Path.Exists, path => new FileInfo(path).LinkTarget);
            // bubblewrap cannot join a cgroup itself, and joining after it started would let job
            // code run outside the limits for a moment: a shell joins first, then execs bubblewrap.
            var psi = new ProcessStartInfo(_options.SetprivPath)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // Options, filter and the agent's temp directory go in as descriptors (see JoinCgroupThenExec).
            var files = SandboxCommandBuilder.WriteLaunchFiles(directory, args, SeccompFilter.For(layout.AllowUserNamespaces));
            // setpriv first: the sandbox dies with this process from the launching shell's first instruction on.
            var shell = SandboxCommandBuilder.JoinCgroupThenExec(cgroupProcs, _options.BwrapPath, args, files, enterNetwork, parentPid: Environment.ProcessId);
            foreach (var arg in SandboxCommandBuilder.DieWithParent(shell)) psi.ArgumentList.Add(arg);
            // bubblewrap clears the sandbox's environment; clear its own too so our settings
            // (connection strings, keys) are not readable from its /proc entry.
            psi.Environment.Clear();

            var process = sandbox.Process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) logger.LogInformation("runner {JobId}: {Line}", key, e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) logger.LogWarning("runner {JobId}: {Line}", key, e.Data); };
            if (!await _spawner.StartAsync(process)) throw new RunnerStartException("bubblewrap did not start");
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();

            _live[key] = sandbox;
            // A warm sandbox's agent waits on its open stdin for a job's token.
            if (token is not null)
            {
                try
                {
                    // The token's only way in: one line on stdin, then EOF.
                    await process.StandardInput.WriteLineAsync(token.AsMemory(), ct);
                    await process.StandardInput.FlushAsync(ct);
                    process.StandardInput.Close();
                }
                catch (IOException)
                {
                    // bubblewrap exited before reading (bad setup); its exit code and stderr tell why.
                }
            }
            logger.LogInformation("Started sandbox {SandboxId} (pid {Pid})", key, process.Id);
            return sandbox;
        }
        catch (Exception ex) when (ex is not RunnerStartException and not OperationCanceledException)
        {
            await RemoveFailedStartAsync(sandbox);
            throw new RunnerStartException($"could not start the sandbox: {ex.Message}", ex);
        }
        catch
        {
            await RemoveFailedStartAsync(sandbox);
            throw;
        }
    }

    private async Task RemoveFailedStartAsync(Sandbox sandbox)
    {
        _live.TryRemove(sandbox.Id, out _);
        await sandbox.DisposeAsync();
    }

    /// <summary>The sandbox of this id: the live one, or — after a restart, or for a leftover — one known only by its names.</summary>
    private Sandbox Known(Guid sandboxId, bool remove, EgressNetwork? egress = null, bool withDirectory = true) =>
        (remove ? _live.TryRemove(sandboxId, out var live) : _live.TryGetValue(sandboxId, out live)) ? live
            : new Sandbox(sandboxId, withDirectory ? SandboxDirectory(sandboxId) : null, _cgroups, egress ?? _egress);

    private static async Task<int> WaitForExitAsync(Process process)
    {
        await process.WaitForExitAsync(CancellationToken.None);
        return process.ExitCode;
    }

    public async Task KillAsync(RunnerRef runner, CancellationToken ct)
    {
        runner = runner with { JobId = SandboxIdOf(runner.JobId) };
        // The whole group at once: bubblewrap, the agent, steps, daemons that left the session.
        if (_cgroups is not null) await _cgroups.KillAsync(runner.JobId, ct);
        int pid;
        Process? ours = null;
        if (_live.TryGetValue(runner.JobId, out var sandbox) && sandbox.Process is not null)
        {
            if (!sandbox.IsRunning) return;
            ours = sandbox.Process;
            pid = ours.Id;
        }
        else if (runner.ProcessId is { } recorded && IsOurSandbox(recorded, runner.JobId))
        {
            pid = recorded;
        }
        else
        {
            return;
        }

        var tree = Sandbox.KillTree(pid);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(KillTimeout);
        try
        {
            if (ours is not null) await ours.WaitForExitAsync(timeout.Token);
            // The namespace's init only finishes exiting once every process inside is gone, so
            // waiting for the whole recorded tree means nothing of the job is left.
            while (tree.Any(ProcessTree.IsAlive) || ProcessTree.IsAlive(pid))
            {
                await Task.Delay(20, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            logger.LogError("Sandbox of job {JobId} (pid {Pid}) still has processes {Timeout} after SIGKILL", runner.JobId, pid, KillTimeout);
            throw new InvalidOperationException($"sandbox of job {runner.JobId} did not die");
        }
    }

    /// <summary>By its cgroup: bubblewrap's command line no longer names the job (its options come through a descriptor).</summary>
    private static bool IsOurSandbox(int pid, Guid jobId) =>
        ProcessTree.IsAlive(pid) && ProcessTree.Cgroups(pid).Contains("/" + jobId, StringComparison.Ordinal);

    public async Task DestroyAsync(RunnerRef runner, CancellationToken ct)
    {
        await Known(SandboxIdOf(runner.JobId), remove: true).DisposeAsync();
        _aliases.TryRemove(runner.JobId, out _);
    }

    public string? LimitExceeded(RunnerRef runner) =>
        _cgroups is not null && _live.TryGetValue(SandboxIdOf(runner.JobId), out var sandbox)
            ? _cgroups.LimitHit(SandboxIdOf(runner.JobId), sandbox.Resources)
            : null;

    public bool IsAlive(RunnerRef runner)
    {
        runner = runner with { JobId = SandboxIdOf(runner.JobId) };
        if (_live.TryGetValue(runner.JobId, out var sandbox) && sandbox.Process is not null) return sandbox.IsRunning;
        if (_cgroups is not null && _cgroups.Processes(runner.JobId).Count > 0) return true;
        return runner.ProcessId is { } pid && IsOurSandbox(pid, runner.JobId);
    }

    public async Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct)
    {
        // Jobs on warm sandboxes are known by their sandbox's id on this machine.
        keep = keep.Select(SandboxIdOf).ToHashSet();
        // _starting before _live: a start puts its id in _live before it leaves _starting, so read in this order a
        // sandbox that finishes starting between the two reads is still seen (the other order saw neither, and deleted
        // a starting runner's workspace under it: bwrap "Can't find source path …/workspace").
        bool Leftover(Guid id) => !keep.Contains(id) && !_starting.ContainsKey(id) && !_live.ContainsKey(id);
        // Only what carries this installation's id: its cgroup parent, its network names, its work root.
        var found = new HashSet<Guid>();
        if (Cgroups is { } cgroups)
        {
            found.UnionWith(cgroups.Existing());
            foreach (var stranger in cgroups.OfUnknownOwner()) ReportUnknownOnce(stranger, "a job cgroup of no installation (an EphemeralCI from before installation ids, or another tool)");
        }
        var egress = EgressNetwork.MissingPrerequisite() is null ? Egress : null;
        if (egress is not null) found.UnionWith(await egress.ExistingAsync(ct));
        // Not made here: a host that never ran a sandbox (a Kubernetes-only provisioner) gets no work root;
        // one that fails its checks (owner, marker) is not ours to delete in.
        var ownWorkRoot = Directory.Exists(WorkRootDirectory) && PreparedWorkRoot() is null;
        if (ownWorkRoot)
        {
            foreach (var dir in Directory.EnumerateDirectories(WorkRootDirectory))
            {
                if (Guid.TryParse(Path.GetFileName(dir), out var id)) found.Add(id);
                else ReportUnknownOnce(dir, "not a runner directory");
            }
        }
        foreach (var id in found.Where(Leftover))
        {
            logger.LogInformation("Removing the leftovers of sandbox {SandboxId} (cgroup, network, folder)", id);
            await Known(id, remove: false, egress, withDirectory: ownWorkRoot).DisposeAsync();
        }
    }

    private void ReportUnknownOnce(string path, string what)
    {
        if (_reported.TryAdd(path, 0)) logger.LogWarning("Leaving {Path} alone: {What}, not this installation's ({Installation})", path, what, installation.Id);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var sandboxId in _live.Keys) await Known(sandboxId, remove: true).DisposeAsync();
        _cgroups?.RemoveParentsIfEmpty();
        _spawner.Dispose();
    }
}
