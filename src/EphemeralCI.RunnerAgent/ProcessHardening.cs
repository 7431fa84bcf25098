using System.Runtime.InteropServices;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// Keeps the job's own steps away from the agent's memory. Steps run as the agent's uid, so without
/// this any step could ptrace the agent or read /proc/&lt;agent&gt;/mem and environ and lift the job
/// token (and the secrets) from it. A non-dumpable process's /proc files belong to root and it cannot
/// be attached to by its uid; the flag is reset at execve, so the steps themselves are ordinary.
/// </summary>
internal static partial class ProcessHardening
{
    private const int PR_SET_DUMPABLE = 4;

    /// <summary>False where the call is not available or refused (then the sandbox's own isolation is all there is).</summary>
    public static bool MakeUndumpable() => OperatingSystem.IsLinux() && Prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;

    private const string DescriptorLinkPrefix = "/proc/self/fd/";
    private const int F_SETFD = 2, FD_CLOEXEC = 1;

    /// <summary>
    /// The sandbox hands the agent a private TMPDIR as an open directory (/proc/self/fd/N, bound
    /// nowhere in the sandbox). Marked close-on-exec here so no step inherits it: then only the agent
    /// can reach it. Null when that worked or there is no such TMPDIR; else why, and TMPDIR is dropped
    /// (temp files then go to /tmp as without a sandbox).
    /// </summary>
    public static string? KeepTempPrivate()
    {
        var tmp = Environment.GetEnvironmentVariable("TMPDIR");
        if (tmp is null || !tmp.StartsWith(DescriptorLinkPrefix, StringComparison.Ordinal)) return null;
        if (int.TryParse(tmp.AsSpan(DescriptorLinkPrefix.Length), out var fd) && fd > 2 && Fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && Directory.Exists(tmp))
        {
            return null;
        }
        Environment.SetEnvironmentVariable("TMPDIR", null);
        return $"the private temp directory {tmp} is not open (errno {Marshal.GetLastPInvokeError()}); using /tmp";
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
