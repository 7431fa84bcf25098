using System.Collections.Concurrent;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Serialises everything that changes one job's runner (start, cancel, exit, deadline, teardown)
/// inside this process, so a cancel racing a start or an exit racing a kill is decided once.
/// The database row decides across redeliveries; this lock decides between threads.
/// </summary>
public sealed class JobLocks
{
    private readonly ConcurrentDictionary<Guid, Entry> _locks = new();

    public async Task<IDisposable> AcquireAsync(Guid jobId, CancellationToken ct = default)
    {
        Entry entry;
        while (true)
        {
            entry = _locks.GetOrAdd(jobId, _ => new Entry());
            lock (entry)
            {
                if (!entry.Removed) { entry.Users++; break; }
            }
        }
        try
        {
            await entry.Semaphore.WaitAsync(ct);
        }
        catch
        {
            Release(jobId, entry, held: false);
            throw;
        }
        return new Handle(this, jobId, entry);
    }

    /// <summary>The job's lock if it can be had within <paramref name="wait"/>, else null: someone is changing the job right now.</summary>
    public async Task<IDisposable?> TryAcquireAsync(Guid jobId, TimeSpan wait, CancellationToken ct = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(wait);
        try
        {
            return await AcquireAsync(jobId, timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private void Release(Guid jobId, Entry entry, bool held)
    {
        if (held) entry.Semaphore.Release();
        lock (entry)
        {
            if (--entry.Users == 0)
            {
                entry.Removed = true;
                _locks.TryRemove(new KeyValuePair<Guid, Entry>(jobId, entry));
            }
        }
    }

    private sealed class Entry
    {
        public readonly SemaphoreSlim Semaphore = new(1, 1);
        public int Users;
        public bool Removed;
    }

    private sealed class Handle(JobLocks owner, Guid jobId, Entry entry) : IDisposable
    {
        private int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) owner.Release(jobId, entry, held: true);
        }
    }
}
