using System.Collections.Concurrent;
using System.Diagnostics;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// Starts sandbox processes from one dedicated thread that lives as long as the provisioner.
/// bubblewrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the parent <em>thread</em>
/// exits, not the parent process: started from a thread-pool thread, a sandbox is SIGKILLed as soon
/// as the pool retires that thread (which it does after a burst), and the job ends "killed from outside".
/// Before each start, descriptors the provisioner inherited are marked close-on-exec (see <see cref="InheritedDescriptors"/>).
/// </summary>
public sealed class SandboxSpawner : IDisposable
{
    private readonly BlockingCollection<(Process Process, TaskCompletionSource<bool> Started)> _queue = [];
    private readonly Thread _thread;

    public SandboxSpawner()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "eci-sandbox-spawner" };
        _thread.Start();
    }

    /// <summary>Process.Start on the spawner thread; true if it started.</summary>
    public Task<bool> StartAsync(Process process)
    {
        var started = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add((process, started));
        return started.Task;
    }

    private void Run()
    {
        foreach (var (process, started) in _queue.GetConsumingEnumerable())
        {
            try
            {
                InheritedDescriptors.MarkCloseOnExec();
                started.SetResult(process.Start());
            }
            catch (Exception ex)
            {
                started.SetException(ex);
            }
        }
    }

    /// <summary>Only at shutdown, after every sandbox is gone: the thread's exit kills what it started.</summary>
    public void Dispose() => _queue.CompleteAdding();
}
