using System.Text;
using EphemeralCI.RunnerAgent.Terminal;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerAgent;

/// <summary>
/// The agent's pseudo-terminal shuts down safely while its output thread reads: a blocked read is woken (not left on an fd
/// that Dispose closed, whose number the next open would reuse), and calls after Dispose touch no fd.
/// </summary>
public sealed class PseudoTerminalTests
{
    private static PseudoTerminal Start() => PseudoTerminal.Start(Path.GetTempPath(),
        new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin", ["HOME"] = Path.GetTempPath(), ["TERM"] = "dumb" }, 80, 24);

    [Fact]
    public async Task Dispose_wakes_a_reader_blocked_while_something_else_still_holds_the_slave()
    {
        var terminal = Start();
        // A holder outside the shell's process tree (a daemon that left it would be one): killing the shell then does not hang
        // the master up, so only Dispose can end the read.
        using var slave = File.OpenHandle(terminal.SlavePath, FileMode.Open, FileAccess.ReadWrite);
        var seen = new StringBuilder();
        var prompt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // bash's prompt (the system's bashrc may set its own): after it, bash waits for input and the reader blocks.
        var reader = Task.Factory.StartNew(() =>
        {
            var buffer = new byte[4096];
            int read;
            while ((read = terminal.Read(buffer)) > 0)
            {
                lock (seen) seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
                lock (seen) if (seen.ToString().TrimEnd().EndsWith('$') || seen.ToString().TrimEnd().EndsWith('#')) prompt.TrySetResult();
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try { await prompt.Task.WaitAsync(TimeSpan.FromSeconds(20)); }
        catch (TimeoutException) { lock (seen) Assert.Fail($"no prompt; the terminal showed: '{seen}'"); }

        terminal.Dispose();

        var ended = await Task.WhenAny(reader, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.True(ended == reader, "the output thread is still blocked reading the master after Dispose");
        await reader;
    }

    [Fact]
    public void Resize_and_write_after_dispose_touch_no_fd()
    {
        var terminal = Start();
        terminal.Dispose();
        // The fd number may already belong to another open: neither may reach it (before, Resize ran TIOCSWINSZ on it).
        using var other = File.OpenHandle(Path.GetTempFileName(), FileMode.Open, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
        terminal.Resize(100, 40);
        terminal.Write("echo hi\r"u8);
        Assert.Equal(0, terminal.Read(new byte[16]));
        terminal.Dispose();
    }
}
