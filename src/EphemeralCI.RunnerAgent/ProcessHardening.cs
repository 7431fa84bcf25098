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

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
