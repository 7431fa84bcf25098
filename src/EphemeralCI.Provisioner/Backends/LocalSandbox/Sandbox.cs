using System.Diagnostics;
using System.Runtime.Versioning;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Cgroups;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// Everything one sandbox has on this machine — its process tree, cgroup, egress network, control-plane
/// relay and folder (workspace, control sockets, overlay) — and the one path that removes it all:
/// <see cref="DisposeAsync"/>. A start that fails, a destroy, the provisioner's shutdown and the sweep of
/// leftovers all end a sandbox through it; what is unknown (after a restart: no process object, no relay)
/// is found by the sandbox's id, which names its cgroup, network and folder. Idempotent.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class Sandbox(Guid id, string? directory, JobCgroups? cgroups, EgressNetwork? egress) : IAsyncDisposable
{
    private static readonly UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The sandbox's id: the job's for a cold start, its own for a warm one.</summary>
    public Guid Id => id;
    /// <summary>Its folder under the work root; null when the work root is not this installation's to delete in.</summary>
    public string? Directory => directory;
    /// <summary>The launching process (setpriv → shell → bubblewrap), once started.</summary>
    public Process? Process { get; set; }
    public ControlPlaneRelay? Relay { get; set; }
    public RunnerResources Resources { get; init; } = new();
    /// <summary>The egress networks its network (if any) belongs to.</summary>
    public EgressNetwork? Egress { get; set; } = egress;

    public bool IsRunning
    {
        get
        {
            try { return Process is { HasExited: false }; } catch (InvalidOperationException) { return false; }
        }
    }

    /// <summary>Kills whatever runs, then removes relay, cgroup, network and folder, in that order.</summary>
    public async ValueTask DisposeAsync()
    {
        if (IsRunning) KillTree(Process!.Id);
        // The whole group at once: anything that left bubblewrap's tree (daemons, double forks) goes too.
        if (cgroups is not null) await cgroups.KillAsync(id, CancellationToken.None);
        if (Relay is not null) await Relay.DisposeAsync();
        Process?.Dispose();
        cgroups?.Remove(id);
        // A namespace file is cheap to check; jobs without an egress network spawn nothing here.
        if (Egress is { } network && File.Exists(EgressNetwork.NamespacePath(network.Names(id))))
        {
            await network.RemoveAsync(id, CancellationToken.None);
        }
        if (directory is not null) DeleteTree(directory);
    }

    /// <summary>SIGKILL the namespace init(s) first, so bubblewrap reaps them and exits, then bubblewrap itself. Returns the tree it killed.</summary>
    public static IReadOnlyList<int> KillTree(int pid)
    {
        var tree = ProcessTree.Descendants(pid);
        foreach (var child in tree) ProcessTree.Kill(child);
        for (var i = 0; i < 50 && ProcessTree.IsAlive(pid); i++) Thread.Sleep(10);
        ProcessTree.Kill(pid);
        return tree;
    }

    /// <summary>Deletes a sandbox's folder even if the job took write permission away from its own folders.</summary>
    public static void DeleteTree(string path)
    {
        if (!System.IO.Directory.Exists(path)) return;
        // Never delete through a mount (a job's overlay): unmount first.
        OverlayRoot.UnmountAll(path);
        try
        {
            System.IO.Directory.Delete(path, recursive: true);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            RestoreOwnerAccess(new DirectoryInfo(path));
            System.IO.Directory.Delete(path, recursive: true);
        }
    }

    private static void RestoreOwnerAccess(DirectoryInfo dir)
    {
        // Never follow links: a job's symlink may point at anything on the host.
        if (dir.LinkTarget is not null) return;
        try { dir.UnixFileMode |= OwnerOnly; } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        foreach (var sub in dir.EnumerateDirectories()) RestoreOwnerAccess(sub);
    }
}
