namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>Looks at the host's /proc for live processes that belong to a job (its id in their command line or environment).</summary>
public static class SandboxProcesses
{
    /// <summary>Every live process of the host with its command line.</summary>
    public static IReadOnlyList<(int Pid, string CommandLine)> All()
    {
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText($"{dir}/stat");
                if (stat[(stat.LastIndexOf(')') + 2)..][0] is 'Z' or 'X') continue;
                found.Add((pid, File.ReadAllText($"{dir}/cmdline").Replace('\0', ' ')));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
            {
                // exited while we looked
            }
        }
        return found;
    }

    public static IReadOnlyList<(int Pid, string CommandLine)> Of(Guid jobId)
    {
        var marker = jobId.ToString();
        var self = Environment.ProcessId;
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == self) continue;
            try
            {
                var stat = File.ReadAllText($"{dir}/stat");
                var state = stat[(stat.LastIndexOf(')') + 2)..][0];
                if (state is 'Z' or 'X') continue;
                var cmdline = File.ReadAllText($"{dir}/cmdline").Replace('\0', ' ');
                var environ = File.ReadAllText($"{dir}/environ").Replace('\0', ' ');
                if (cmdline.Contains(marker) || environ.Contains(marker)) found.Add((pid, cmdline));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
            {
                // exited while we looked
            }
        }
        return found;
    }
}
