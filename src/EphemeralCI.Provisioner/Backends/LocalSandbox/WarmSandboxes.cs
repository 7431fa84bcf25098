using System.Collections.Concurrent;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// The warm sandboxes ready for a job, per template, oldest first — the list the backend takes from
/// when it starts a runner and the <see cref="WarmPool"/> fills. Taking one signals the pool to start a
/// replacement.
/// </summary>
public sealed class WarmSandboxes
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Guid>> _ready = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _taken = new(0, 1);

    /// <summary>The ready sandboxes of a template (ids), oldest first; empty when it has no pool.</summary>
    public IReadOnlyList<Guid> Ready(string template) => _ready.TryGetValue(template, out var q) ? [.. q] : [];

    /// <summary>The oldest ready sandbox of the template, or null (none ready, or no pool).</summary>
    public Guid? TryTake(string template)
    {
        if (!_ready.TryGetValue(template, out var queue) || !queue.TryDequeue(out var sandboxId)) return null;
        if (_taken.CurrentCount == 0) _taken.Release();
        return sandboxId;
    }

    /// <summary>How many sandboxes of the template are ready (a template gets a list on first use).</summary>
    public int Count(string template) => Queue(template).Count;

    public void Add(string template, Guid sandboxId) => Queue(template).Enqueue(sandboxId);

    /// <summary>Removes one that died while ready; false if it was taken meanwhile (then it is the job's).</summary>
    public bool Remove(string template, Guid sandboxId)
    {
        // Rare (a warm sandbox died): rebuild the queue without it.
        var queue = Queue(template);
        var found = false;
        var count = queue.Count;
        for (var i = 0; i < count && queue.TryDequeue(out var item); i++)
        {
            if (item == sandboxId) found = true;
            else queue.Enqueue(item);
        }
        return found;
    }

    /// <summary>Empties every list (shutdown), returning what was ready.</summary>
    public List<Guid> TakeAll()
    {
        var all = new List<Guid>();
        foreach (var queue in _ready.Values)
        {
            while (queue.TryDequeue(out var id)) all.Add(id);
        }
        return all;
    }

    /// <summary>Waits until a sandbox is taken or <paramref name="timeout"/> passes (the pool's refill pace).</summary>
    public Task WaitForTakeAsync(TimeSpan timeout, CancellationToken ct) => _taken.WaitAsync(timeout, ct);

    private ConcurrentQueue<Guid> Queue(string template) => _ready.GetOrAdd(template, _ => new ConcurrentQueue<Guid>());
}
