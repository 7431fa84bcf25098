using System.Globalization;
using System.Runtime.InteropServices;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// .NET opens everything close-on-exec, but descriptors the provisioner inherited from whatever started
/// it (a CI system's log pipe, a service manager's socket, a shell's redirection) are not, and
/// bubblewrap passes every open descriptor on into the sandbox: job code could read or write them.
/// Marking them close-on-exec before each spawn keeps the sandbox's descriptors to the ones the
/// launch hands over explicitly.
/// </summary>
public static partial class InheritedDescriptors
{
    private const int F_GETFD = 1;
    private const int F_SETFD = 2;
    private const int FD_CLOEXEC = 1;

    /// <summary>Sets close-on-exec on every descriptor above stderr that lacks it; returns how many it changed.</summary>
    public static int MarkCloseOnExec()
    {
        var changed = 0;
        foreach (var entry in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var fd) || fd <= 2) continue;
            var flags = Fcntl(fd, F_GETFD, 0);
            if (flags < 0 || (flags & FD_CLOEXEC) != 0) continue; // closed meanwhile (the listing's own descriptor), or already marked
            if (Fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0) changed++;
        }
        return changed;
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
