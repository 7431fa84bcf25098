using System.Diagnostics;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// The embedded server runs jobs in bubblewrap sandboxes. Checked before anything starts, so a
/// machine without it gets one clear paragraph on how to fix it instead of a stack trace at the first job.
/// </summary>
public static class LocalSandboxPrerequisites
{
    public const string BwrapPathSetting = "Provisioner:LocalSandbox:BwrapPath";

    /// <summary>Null when bubblewrap is there and works; otherwise what to tell the operator.</summary>
    public static string? Problem(IConfiguration configuration)
    {
        var bwrap = configuration[BwrapPathSetting];
        if (string.IsNullOrWhiteSpace(bwrap)) bwrap = "/usr/bin/bwrap";
        if (!File.Exists(bwrap))
        {
            return $"""
                EphemeralCI runs every job in a fresh bubblewrap sandbox, and bubblewrap is not installed ({bwrap} is missing).
                Install it, then start the server again:
                  Debian/Ubuntu:  sudo apt-get install bubblewrap
                  Fedora/RHEL:    sudo dnf install bubblewrap
                  Arch:           sudo pacman -S bubblewrap
                (or set {BwrapPathSetting} to where your bwrap is).
                """;
        }

        // Present but unusable (no user namespaces, e.g. an AppArmor restriction): say so now.
        try
        {
            using var probe = Process.Start(new ProcessStartInfo(bwrap)
            {
                ArgumentList = { "--unshare-all", "--ro-bind", "/", "/", "--", "/bin/true" },
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            var error = probe.StandardError.ReadToEndAsync();
            if (!probe.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                probe.Kill(entireProcessTree: true);
                return $"bubblewrap ({bwrap}) did not finish a trivial sandbox within 10 s.";
            }
            if (probe.ExitCode != 0)
            {
                return $"""
                    bubblewrap ({bwrap}) is installed but cannot create a sandbox here: {error.Result.Trim()}
                    It needs unprivileged user namespaces, or running the server as root. On Ubuntu 24.04+ allow them with
                      sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0
                    elsewhere check: sysctl kernel.unprivileged_userns_clone user.max_user_namespaces
                    """;
            }
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"bubblewrap ({bwrap}) could not be started: {ex.Message}";
        }
        return null;
    }
}
