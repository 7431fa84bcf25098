using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace EphemeralCI.RunnerAgent.Terminal;

/// <summary>
/// A shell on a pseudo-terminal: the agent holds the master (opened close-on-exec, so the shell never inherits it), the shell gets
/// the slave as stdin/stdout/stderr and, through <c>setsid --ctty</c>, as its controlling terminal — so the line discipline does
/// what a terminal does: echo, Ctrl+C (byte 0x03) signals the foreground process group, a window size (TIOCSWINSZ) sends SIGWINCH.
/// Inside a sandbox this is the sandbox's own devpts (bubblewrap's <c>--dev</c> mounts a new instance), so no host terminal is reachable.
/// The master is read on one thread while another disposes the terminal, so it lives in a <see cref="SafeFileHandle"/>: every call
/// holds a reference for as long as it uses the fd, and <see cref="Dispose"/> only marks it closed — the fd is closed when the last
/// call lets go, never while a read still blocks on it (a closed fd's number is reused by the next open, and the reader would read,
/// or its caller close, someone else's file). A blocked read is woken by an eventfd that <see cref="Dispose"/> signals: killing the
/// shell is not enough, as a process outside its tree (or the caller) may still hold the slave, and then the master never hangs up.
/// </summary>
internal sealed partial class PseudoTerminal : IDisposable
{
    private const int O_RDWR = 0x2, O_NOCTTY = 0x100, O_CLOEXEC = 0x80000;
    private const nuint TIOCSWINSZ = 0x5414; // Linux: the agent runs only in Linux sandboxes and pods
    private const int EINTR = 4;
    private const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;
    private const short POLLIN = 0x1;

    private readonly SafeFileHandle _master;
    private readonly SafeFileHandle _wake;
    private int _closed;

    private PseudoTerminal(int master, int wake, string slavePath, Process shell)
    {
        _master = new SafeFileHandle(master, ownsHandle: true);
        _wake = new SafeFileHandle(wake, ownsHandle: true);
        SlavePath = slavePath;
        Shell = shell;
    }

    public string SlavePath { get; }
    public Process Shell { get; }

    /// <summary>Starts <c>bash -i</c> in <paramref name="workingDirectory"/> with exactly <paramref name="environment"/>, at the given size.</summary>
    public static PseudoTerminal Start(string workingDirectory, IReadOnlyDictionary<string, string> environment, int cols, int rows)
    {
        var master = PosixOpenpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) throw new IOException($"posix_openpt failed (errno {Marshal.GetLastPInvokeError()}): is /dev/pts mounted?");
        var wake = -1;
        try
        {
            wake = EventFd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (wake < 0) throw new IOException($"eventfd failed (errno {Marshal.GetLastPInvokeError()})");
            if (Grantpt(master) != 0 || Unlockpt(master) != 0) throw new IOException($"grantpt/unlockpt failed (errno {Marshal.GetLastPInvokeError()})");
            var name = new byte[128];
            if (PtsnameR(master, name, (nuint)name.Length) != 0) throw new IOException($"ptsname failed (errno {Marshal.GetLastPInvokeError()})");
            var slave = System.Text.Encoding.ASCII.GetString(name, 0, Array.IndexOf(name, (byte)0));
            SetSize(master, cols, rows);

            // sh opens the slave as fds 0-2, then setsid makes a new session whose controlling terminal is fd 0; --wait keeps
            // the exit code if setsid had to fork. env --default-signal first: an ignored SIGINT/SIGQUIT is inherited through exec
            // (the agent's starter may have run it in the background of a non-interactive shell, which ignores both), and bash
            // hands it on to every command, so Ctrl+C would be echoed but reach nothing. A terminal's shell starts as a login's does,
            // with every signal at its default (an env older than coreutils 8.31 lacks the option: the shell starts as before).
            var psi = new ProcessStartInfo("/bin/sh")
            {
                WorkingDirectory = workingDirectory,
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var arg in (string[])["-c", "d=; env --default-signal true 2>/dev/null && d='env --default-signal'; exec $d setsid --ctty --wait bash -i <>\"$1\" >&0 2>&0", "sh", slave]) psi.ArgumentList.Add(arg);
            psi.Environment.Clear();
            foreach (var (key, value) in environment) psi.Environment[key] = value;
            var shell = Process.Start(psi) ?? throw new IOException("sh did not start");
            shell.StandardInput.Close();
            return new PseudoTerminal(master, wake, slave, shell);
        }
        catch
        {
            Close(master);
            if (wake >= 0) Close(wake);
            throw;
        }
    }

    /// <summary>A new window size (the shell gets SIGWINCH); nothing once the terminal is disposed.</summary>
    public void Resize(int cols, int rows)
    {
        if (!TryUse(_master, out var master)) return;
        try { SetSize(master, cols, rows); }
        finally { _master.DangerousRelease(); }
    }

    /// <summary>Reads output; 0 once every holder of the slave has closed it (EIO on Linux) or the terminal was disposed.</summary>
    public unsafe int Read(Span<byte> buffer)
    {
        if (!TryUse(_master, out var master)) return 0;
        try
        {
            if (!TryUse(_wake, out var wake)) return 0;
            try
            {
                while (Volatile.Read(ref _closed) == 0)
                {
                    // Wait for output or for Dispose; only then read, so the read itself never blocks.
                    var fds = stackalloc PollFd[2];
                    fds[0] = new PollFd { Fd = master, Events = POLLIN };
                    fds[1] = new PollFd { Fd = wake, Events = POLLIN };
                    if (Poll(fds, 2, -1) < 0)
                    {
                        if (Marshal.GetLastPInvokeError() == EINTR) continue;
                        return 0;
                    }
                    if (fds[1].Revents != 0 || fds[0].Revents == 0) continue; // woken by Dispose: the loop's check ends it
                    nint n;
                    fixed (byte* p = buffer) n = ReadFd(master, p, (nuint)buffer.Length);
                    if (n >= 0) return (int)n;
                    if (Marshal.GetLastPInvokeError() == EINTR) continue;
                    return 0; // EIO: the slave's last holder closed it
                }
                return 0;
            }
            finally { _wake.DangerousRelease(); }
        }
        finally { _master.DangerousRelease(); }
    }

    /// <summary>Keystrokes, as the terminal would receive them (0x03 is Ctrl+C: the line discipline signals the foreground group).</summary>
    public unsafe void Write(ReadOnlySpan<byte> bytes)
    {
        if (!TryUse(_master, out var master)) return;
        try
        {
            while (bytes.Length > 0 && Volatile.Read(ref _closed) == 0)
            {
                nint n;
                fixed (byte* p = bytes) n = WriteFd(master, p, (nuint)bytes.Length);
                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EINTR) continue;
                    return; // the shell is gone: nothing reads keystrokes any more
                }
                bytes = bytes[(int)n..];
            }
        }
        finally { _master.DangerousRelease(); }
    }

    /// <summary>Takes a reference on <paramref name="handle"/> (the caller releases it) unless the terminal is disposed.</summary>
    private static bool TryUse(SafeFileHandle handle, out int fd)
    {
        fd = -1;
        var added = false;
        try { handle.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { return false; }
        fd = (int)handle.DangerousGetHandle();
        return added;
    }

    private static void SetSize(int fd, int cols, int rows)
    {
        var size = new WinSize { Rows = (ushort)rows, Cols = (ushort)cols };
        if (Ioctl(fd, TIOCSWINSZ, ref size) != 0) throw new IOException($"TIOCSWINSZ failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>
    /// Ends the shell and wakes a blocked <see cref="Read"/>; the fds are closed once no call holds them any more (at once when none does).
    /// </summary>
    public unsafe void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        if (TryUse(_wake, out var wake))
        {
            try
            {
                var one = 1UL;
                _ = WriteFd(wake, (byte*)&one, sizeof(ulong));
            }
            finally { _wake.DangerousRelease(); }
        }
        try { if (!Shell.HasExited) Shell.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { /* already gone */ }
        _master.Dispose();
        _wake.Dispose();
        Shell.Dispose();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WinSize
    {
        public ushort Rows, Cols, XPixel, YPixel;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events, Revents;
    }

    [LibraryImport("libc", EntryPoint = "posix_openpt", SetLastError = true)]
    private static partial int PosixOpenpt(int flags);

    [LibraryImport("libc", EntryPoint = "grantpt", SetLastError = true)]
    private static partial int Grantpt(int fd);

    [LibraryImport("libc", EntryPoint = "unlockpt", SetLastError = true)]
    private static partial int Unlockpt(int fd);

    [LibraryImport("libc", EntryPoint = "ptsname_r", SetLastError = true)]
    private static partial int PtsnameR(int fd, [Out] byte[] buffer, nuint length);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nuint request, ref WinSize size);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFd(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteFd(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
