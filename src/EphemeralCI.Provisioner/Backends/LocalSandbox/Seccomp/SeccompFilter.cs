using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Seccomp;

/// <summary>
/// Compiles <see cref="SeccompPolicy"/> into the classic-BPF program bubblewrap loads with
/// <c>--seccomp FD</c>, using libseccomp (Debian's libseccomp2, which bubblewrap's own distribution
/// dependencies already bring in). libseccomp knows every architecture's system call numbers and
/// writes the architecture check; a hand-written program would have to. Compiled once per policy and
/// process (a few hundred bytes), so a runner's start pays only for writing it to a file.
/// </summary>
[UnsupportedOSPlatform("windows")]
public static partial class SeccompFilter
{
    public const string Library = "libseccomp.so.2";
    private const uint ActionAllow = 0x7fff0000;
    private const uint ArchX86_64 = 0xc000003e;
    private const uint ArchX86 = 0x40000003;
    private const int CompareMaskedEqual = 7;
    private const int Eperm = 1, Enosys = 38;

    private static readonly ConcurrentDictionary<bool, byte[]> Compiled = new();

    /// <summary>The filter for a sandbox (cached); throws <see cref="SeccompUnavailableException"/> when libseccomp is missing or refuses a rule.</summary>
    public static byte[] For(bool allowUserNamespaces) =>
        Compiled.GetOrAdd(allowUserNamespaces, allow => Compile(SeccompPolicy.Rules(allow)));

    /// <summary>Null when the filter can be built here, else what is missing and how to fix it.</summary>
    public static string? MissingPrerequisite()
    {
        try
        {
            For(allowUserNamespaces: false);
            return null;
        }
        catch (SeccompUnavailableException ex)
        {
            return ex.Message;
        }
    }

    public static byte[] Compile(IReadOnlyList<SeccompRule> rules)
    {
        IntPtr ctx;
        try
        {
            ctx = SeccompInit(ActionAllow);
        }
        catch (DllNotFoundException)
        {
            throw new SeccompUnavailableException($"{Library} was not found: install libseccomp2 (apt-get install libseccomp2); runners need it for their system call filter");
        }
        if (ctx == IntPtr.Zero) throw new SeccompUnavailableException("seccomp_init failed");
        try
        {
            // 32-bit programs on a 64-bit kernel enter through another table with other numbers:
            // the filter covers that table too (any other architecture is killed by libseccomp's check).
            if (SeccompArchNative() == ArchX86_64) Check(SeccompArchAdd(ctx, ArchX86), "add the x86 architecture");
            foreach (var rule in rules)
            {
                var number = SeccompSyscallResolveName(rule.Syscall);
                // __NR_SCMP_ERROR: a name this libseccomp does not know (older than the call).
                if (number == -1) throw new SeccompUnavailableException($"libseccomp does not know the system call '{rule.Syscall}': update libseccomp2");
                var action = 0x00050000u | (uint)(rule.Refusal == SeccompRefusal.NotImplemented ? Enosys : Eperm);
                var comparisons = rule.When.Select(w => new ArgumentComparison((uint)w.Index, CompareMaskedEqual, w.Mask, w.Value)).ToArray();
                Check(SeccompRuleAddArray(ctx, action, number, (uint)comparisons.Length, comparisons), $"add the rule for {rule.Syscall}");
            }
            return Export(ctx);
        }
        finally
        {
            SeccompRelease(ctx);
        }
    }

    private static byte[] Export(IntPtr ctx)
    {
        // seccomp_export_bpf writes to a descriptor; a memory file keeps it off the disk.
        var fd = MemfdCreate("eci-seccomp", 1 /* MFD_CLOEXEC */);
        if (fd < 0) throw new SeccompUnavailableException($"memfd_create failed (errno {Marshal.GetLastPInvokeError()})");
        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        Check(SeccompExportBpf(ctx, fd), "export the program");
        var length = RandomAccess.GetLength(handle);
        var program = new byte[length];
        var read = 0;
        while (read < program.Length) read += RandomAccess.Read(handle, program.AsSpan(read), read);
        // A classic BPF program is a whole number of 8-byte instructions.
        if (program.Length == 0 || program.Length % 8 != 0) throw new SeccompUnavailableException($"libseccomp exported a {program.Length}-byte program");
        return program;
    }

    private static void Check(int result, string what)
    {
        if (result < 0) throw new SeccompUnavailableException($"libseccomp could not {what} (error {-result})");
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct ArgumentComparison(uint Argument, int Operator, ulong DatumA, ulong DatumB);

    [LibraryImport(Library, EntryPoint = "seccomp_init")]
    private static partial IntPtr SeccompInit(uint defaultAction);

    [LibraryImport(Library, EntryPoint = "seccomp_release")]
    private static partial void SeccompRelease(IntPtr ctx);

    [LibraryImport(Library, EntryPoint = "seccomp_arch_native")]
    private static partial uint SeccompArchNative();

    [LibraryImport(Library, EntryPoint = "seccomp_arch_add")]
    private static partial int SeccompArchAdd(IntPtr ctx, uint arch);

    [LibraryImport(Library, EntryPoint = "seccomp_syscall_resolve_name", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SeccompSyscallResolveName(string name);

    // The non-variadic form: seccomp_rule_add's "..." cannot be called portably from .NET.
    [LibraryImport(Library, EntryPoint = "seccomp_rule_add_array")]
    private static partial int SeccompRuleAddArray(IntPtr ctx, uint action, int syscall, uint count, [In] ArgumentComparison[] comparisons);

    [LibraryImport(Library, EntryPoint = "seccomp_export_bpf")]
    private static partial int SeccompExportBpf(IntPtr ctx, int fd);

    [LibraryImport("libc", EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MemfdCreate(string name, uint flags);
}

/// <summary>The system call filter cannot be built on this machine; the message says what to install.</summary>
public sealed class SeccompUnavailableException(string message) : Exception(message);
