using System.Globalization;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>What the host can see of a job: processes, files, mounts, cgroups and its network namespace.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public static class HostTraces
{
    /// <summary>The network namespace inode of a live process of the job (to look for it again after teardown).</summary>
    public static string? NetworkNamespaceOf(Guid jobId)
    {
        foreach (var (pid, _) in SandboxProcesses.Of(jobId))
        {
            try
            {
                var ns = new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
                if (ns is not null && ns != HostNetworkNamespace) return ns;
            }
            catch (IOException) { }
        }
        return null;
    }

    private static string? HostNetworkNamespace => new FileInfo("/proc/self/ns/net").LinkTarget;

    public static void AssertNoneLeft(LocalSandboxBackend sandbox, string workRoot, Guid jobId, string? networkNamespace)
    {
        Assert.Empty(SandboxProcesses.Of(jobId));
        Assert.False(Directory.Exists(Path.Combine(workRoot, jobId.ToString())), "the job's directory is deleted");
        var mounts = File.ReadAllText("/proc/self/mountinfo");
        Assert.DoesNotContain(jobId.ToString(), mounts);
        foreach (var dir in sandbox.JobCgroups.Layout.JobDirectories(jobId))
        {
            Assert.False(Directory.Exists(dir), $"cgroup {dir} is removed");
        }
        if (networkNamespace is not null)
        {
            Assert.DoesNotContain(networkNamespace, mounts);
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out _)) continue;
                string? ns;
                try { ns = new FileInfo($"{dir}/ns/net").LinkTarget; }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { continue; }
                Assert.NotEqual(networkNamespace, ns);
            }
        }
    }
}
