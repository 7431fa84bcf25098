namespace EphemeralCI.EndToEndTests;

/// <summary>Looks at the host, not at what the system reports: is anything of a runner left?</summary>
public static class RunnerTraces
{
    /// <summary>Processes whose environment carries the job's id (the agent and every step do).</summary>
    public static List<int> ProcessesOf(Guid jobId)
    {
        var marker = $"ECI_JOB_ID={jobId}";
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var environ = File.ReadAllText(Path.Combine(dir, "environ"));
                if (environ.Split('\0').Contains(marker)) found.Add(pid);
            }
            catch (IOException) { }            // exited while we looked
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    public static async Task AssertGoneAsync(Guid jobId, string workRoot)
    {
        // runner.destroyed is recorded after teardown, so nothing may remain by now; a short grace
        // only covers the kernel reaping exited processes.
        for (var i = 0; i < 20 && ProcessesOf(jobId).Count > 0; i++) await Task.Delay(100);
        Xunit.Assert.Empty(ProcessesOf(jobId));
        Xunit.Assert.False(Directory.Exists(Path.Combine(workRoot, jobId.ToString())), "the runner's workspace survived");
        Xunit.Assert.False(Directory.Exists(Path.Combine(workRoot, jobId.ToString("N"))), "the runner's workspace survived");
    }
}
