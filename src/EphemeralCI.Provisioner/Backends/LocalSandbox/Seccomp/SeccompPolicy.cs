namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Seccomp;

/// <summary>How a refused system call fails.</summary>
public enum SeccompRefusal
{
    /// <summary>EPERM: "not allowed here", what a program sees for a missing privilege.</summary>
    NotPermitted,
    /// <summary>ENOSYS: "this kernel has no such call", so libraries take their older path (clone3 → clone, io_uring → epoll).</summary>
    NotImplemented,
}

/// <summary>One comparison of a system call argument: <c>(arg &amp; Mask) == Value</c>.</summary>
public sealed record SeccompArgument(int Index, ulong Mask, ulong Value);

/// <summary>Refuse <see cref="Syscall"/> when every comparison holds (always, when there is none).</summary>
public sealed record SeccompRule(string Syscall, SeccompRefusal Refusal, IReadOnlyList<SeccompArgument> When, string Why);

/// <summary>
/// What the job's processes may not ask of the kernel, on top of having no capabilities. Everything
/// else is allowed: this is a deny-list of the interfaces behind most recent kernel privilege
/// escalations (nested user namespaces with their nf_tables and mount powers, io_uring, eBPF, key
/// rings, userfaultfd as a race widener, perf), none of which a build or a test needs. The agent runs
/// under it too (bubblewrap applies it to everything it starts), which costs it nothing.
/// </summary>
public static class SeccompPolicy
{
    public const ulong CloneNewUser = 0x10000000;
    /// <summary>personality(2) flag that turns address-space randomisation off for the next exec.</summary>
    public const ulong AddrNoRandomize = 0x0040000;
    public const ulong PtraceAttach = 16;
    public const ulong PtraceSeize = 0x4206;

    public static IReadOnlyList<SeccompRule> Rules(bool allowUserNamespaces)
    {
        var rules = new List<SeccompRule>();
        void Always(string why, SeccompRefusal refusal, params string[] syscalls) =>
            rules.AddRange(syscalls.Select(s => new SeccompRule(s, refusal, [], why)));

        if (!allowUserNamespaces)
        {
            // bubblewrap's --disable-userns already makes the kernel refuse (ENOSPC); the filter is the
            // second, independent wall, and it also covers a kernel or bubblewrap where that option fails.
            rules.Add(new("unshare", SeccompRefusal.NotPermitted, [new(0, CloneNewUser, CloneNewUser)], "a nested user namespace"));
            rules.Add(new("clone", SeccompRefusal.NotPermitted, [new(0, CloneNewUser, CloneNewUser)], "a nested user namespace"));
        }
        // clone3 passes its flags in memory, where a filter cannot look: refuse it as "not implemented"
        // so the C library falls back to clone, whose flags the rule above checks.
        Always("clone flags a filter cannot read", SeccompRefusal.NotImplemented, "clone3");
        Always("io_uring (a large, often-exploited kernel surface)", SeccompRefusal.NotImplemented, "io_uring_setup", "io_uring_enter", "io_uring_register");
        Always("kernel key rings (shared across the machine's users)", SeccompRefusal.NotPermitted, "keyctl", "add_key", "request_key");
        Always("eBPF programs", SeccompRefusal.NotPermitted, "bpf");
        Always("userfaultfd (widens kernel race windows)", SeccompRefusal.NotPermitted, "userfaultfd");
        Always("performance counters", SeccompRefusal.NotPermitted, "perf_event_open");
        Always("loading another kernel", SeccompRefusal.NotPermitted, "kexec_load", "kexec_file_load");
        Always("kernel modules", SeccompRefusal.NotPermitted, "init_module", "finit_module", "delete_module");
        // Attaching to a process the step did not start itself. The pid namespace already hides every
        // process outside the sandbox and the agent is non-dumpable; this refuses the attach outright,
        // whatever the target, while PTRACE_TRACEME (gdb and strace starting their own program) still works.
        rules.Add(new("ptrace", SeccompRefusal.NotPermitted, [new(0, ulong.MaxValue, PtraceAttach)], "attaching to a running process"));
        rules.Add(new("ptrace", SeccompRefusal.NotPermitted, [new(0, ulong.MaxValue, PtraceSeize)], "attaching to a running process"));
        // personality(ADDR_NO_RANDOMIZE) switches ASLR off for what the step runs next. 0xffffffff only
        // reads the persona (and has every bit set), so the refusal is "bit 18 set and some other of
        // the low 32 bits clear": one rule per other bit, since libseccomp allows one comparison per argument.
        for (var bit = 0; bit < 32; bit++)
        {
            if (1UL << bit == AddrNoRandomize) continue;
            rules.Add(new("personality", SeccompRefusal.NotPermitted, [new(0, AddrNoRandomize | 1UL << bit, AddrNoRandomize)], "turning address-space randomisation off"));
        }
        return rules;
    }
}
