using System.Runtime.InteropServices;

namespace EphemeralCI.Cli.Terminal;

/// <summary>
/// The local terminal in raw mode for <c>eci shell</c>: no echo, no line editing, no signals from keys — Ctrl+C, Ctrl+Z and
/// Ctrl+D go to the remote shell as bytes. termios through libc rather than running stty: .NET puts back its own terminal
/// settings when a child process that shares the terminal exits, which would undo an stty. The settings are kept as the
/// opaque bytes tcgetattr gave (their layout differs between Linux and macOS) and restored on dispose.
/// </summary>
internal sealed class LocalTerminal : IDisposable
{
    private const int StdIn = 0, StdOut = 1, TCSANOW = 0;
    private readonly byte[] _saved;

    private LocalTerminal(byte[] saved) => _saved = saved;

    public static bool IsTerminal(int fd) => !OperatingSystem.IsWindows() && IsAtty(fd) == 1;

    public static bool StdInIsTerminal => IsTerminal(StdIn);

    /// <summary>Raw mode on standard input until disposed.</summary>
    public static LocalTerminal EnterRaw()
    {
        var saved = new byte[256];
        if (TcGetAttr(StdIn, saved) != 0) throw new IOException($"tcgetattr failed (errno {Marshal.GetLastPInvokeError()})");
        var raw = (byte[])saved.Clone();
        CfMakeRaw(raw);
        if (TcSetAttr(StdIn, TCSANOW, raw) != 0) throw new IOException($"tcsetattr failed (errno {Marshal.GetLastPInvokeError()})");
        return new LocalTerminal(saved);
    }

    /// <summary>The window's size (columns, rows) from standard output's terminal; 80x24 when it has none.</summary>
    public static (int Cols, int Rows) Size()
    {
        var request = OperatingSystem.IsMacOS() ? 0x40087468UL : 0x5413UL; // TIOCGWINSZ
        var size = new ushort[4];
        return IoctlWinSize(StdOut, (nuint)request, size) == 0 && size[0] > 0 && size[1] > 0 ? (size[1], size[0]) : (80, 24);
    }

    public void Dispose() => TcSetAttr(StdIn, TCSANOW, _saved);

    [DllImport("libc", EntryPoint = "isatty")]
    private static extern int IsAtty(int fd);

    [DllImport("libc", EntryPoint = "tcgetattr", SetLastError = true)]
    private static extern int TcGetAttr(int fd, [Out] byte[] termios);

    [DllImport("libc", EntryPoint = "tcsetattr", SetLastError = true)]
    private static extern int TcSetAttr(int fd, int when, byte[] termios);

    [DllImport("libc", EntryPoint = "cfmakeraw")]
    private static extern void CfMakeRaw([In, Out] byte[] termios);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int IoctlWinSize(int fd, nuint request, [Out] ushort[] size);
}
