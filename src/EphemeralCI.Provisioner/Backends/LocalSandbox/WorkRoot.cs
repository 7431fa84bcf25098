using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// The folder that holds every runner's directories (workspace, control sockets, overlay layers).
/// It is bind-mounted into sandboxes by path, so whoever can write it can swap a job's workspace for
/// a link to /etc or plant a relay socket and collect tokens: it must be this user's, closed to
/// everyone else, and one installation's (a marker file names it), never a shared default under /tmp.
/// </summary>
[UnsupportedOSPlatform("windows")]
public static partial class WorkRoot
{
    /// <summary>Names the installation that owns a work root.</summary>
    public const string MarkerFile = ".eci-installation";

    private static readonly UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Where runners go when <c>WorkRoot</c> is not set: root's /var/lib/ephemeralci, else the user's
    /// state folder — below a folder named by the installation, so two installations never share one.
    /// Short on purpose: a job's control socket path must stay under 108 bytes.
    /// </summary>
    public static string DefaultFor(string installationTag)
    {
        if (Environment.IsPrivilegedProcess) return Path.Combine("/var/lib/ephemeralci", installationTag);
        var state = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        if (string.IsNullOrEmpty(state)) state = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
        return Path.Combine(state, "ephemeralci", installationTag);
    }

    /// <summary>
    /// Creates the work root (owner-only) if missing and checks that it may be used: a real
    /// directory (not a link), owned by this process's user, writable by nobody else, and not
    /// another installation's. Returns null when it is fine, else what is wrong and how to fix it.
    /// </summary>
    public static string? Prepare(string path, Guid installation)
    {
        path = Path.GetFullPath(path);
        try
        {
            if (!Directory.Exists(path)) Directory.CreateDirectory(path, OwnerOnly);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot create the runners' work root {path}: {ex.Message} (set {LocalSandboxOptions.Section}:WorkRoot to a folder this user owns)";
        }
        if (Inspect(path) is not { } info) return $"cannot inspect the runners' work root {path}";
        if (info.IsLink || !info.IsDirectory)
        {
            return $"the runners' work root {path} is {(info.IsLink ? "a symbolic link" : "not a directory")}; it must be a directory of its own";
        }
        if (info.Uid != geteuid())
        {
            return $"the runners' work root {path} belongs to uid {info.Uid}, not to this provisioner's user ({geteuid()}): someone else could swap a job's workspace; remove it or choose another {LocalSandboxOptions.Section}:WorkRoot";
        }
        if ((info.Mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            return $"the runners' work root {path} is writable by other users ({Convert.ToString((int)info.Mode, 8)}): chmod 700 it or choose another {LocalSandboxOptions.Section}:WorkRoot";
        }
        // Ours: nobody else needs to look in either.
        if ((info.Mode & ~OwnerOnly) != 0) File.SetUnixFileMode(path, OwnerOnly);

        var marker = Path.Combine(path, MarkerFile);
        var owner = File.Exists(marker) ? File.ReadAllText(marker).Trim() : null;
        if (owner is null)
        {
            // An unmarked work root is adopted: it is this user's and closed (checked above), so what is
            // in it is what an earlier version of this installation left.
            File.WriteAllText(marker, installation.ToString());
            File.SetUnixFileMode(marker, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        else if (!Guid.TryParse(owner, out var other) || other != installation)
        {
            return $"the runners' work root {path} belongs to another EphemeralCI installation ({owner}); give each installation its own {LocalSandboxOptions.Section}:WorkRoot (or leave it unset)";
        }
        return null;
    }

    /// <summary>
    /// Checks a directory just created for a runner: still a real directory of this user, not a link
    /// someone put in its place (the work root is closed, so this only fails if that was bypassed).
    /// </summary>
    public static void VerifyCreated(string path)
    {
        if (Inspect(path) is not { IsDirectory: true, IsLink: false } info || info.Uid != geteuid())
        {
            throw new RunnerStartException($"the runner directory {path} is not the directory just created (a link or another user's): refusing to use it");
        }
    }

    public sealed record Entry(bool IsDirectory, bool IsLink, uint Uid, UnixFileMode Mode);

    /// <summary>lstat: what is at <paramref name="path"/> itself (a link is not followed), or null if nothing.</summary>
    public static Entry? Inspect(string path)
    {
        // struct statx has one layout on every architecture (struct stat has not): uid at 20, mode at 28.
        Span<byte> buffer = stackalloc byte[256];
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType | StatxMode | StatxUid, buffer) != 0) return null;
        var uid = MemoryMarshal.Read<uint>(buffer[20..]);
        var mode = MemoryMarshal.Read<ushort>(buffer[28..]);
        var type = mode & 0xF000;
        return new Entry(type == 0x4000, type == 0xA000, uid, (UnixFileMode)(mode & 0x1FF));
    }

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1, StatxMode = 0x2, StatxUid = 0x8;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint geteuid();
}
