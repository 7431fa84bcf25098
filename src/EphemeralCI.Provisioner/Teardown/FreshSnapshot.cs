using System.Diagnostics;

namespace EphemeralCI.Provisioner.Teardown;

/// <summary>
/// One look at something machine-wide (every process in /proc, the nftables tables), shared by the
/// teardown checks that ask for it before it starts — never by one that asks later: a check may only
/// use a look taken after its own runner's cleanup ended. Looks run one at a time; the checks that ask
/// while one runs all share the next. In a burst of teardowns one scan serves many runners.
/// </summary>
public sealed class FreshSnapshot<T>(Func<CancellationToken, Task<T>> take)
{
    private readonly Lock _gate = new();
    private (long StartedAt, Task<T> Value)? _latest;
    private Task<T>? _next;

    /// <summary>A look started no earlier than <paramref name="notBefore"/> (a <see cref="Stopwatch.GetTimestamp"/>).</summary>
    public Task<T> GetAsync(long notBefore, CancellationToken ct)
    {
        lock (_gate)
        {
            if (_latest is { } latest && latest.StartedAt >= notBefore && !latest.Value.IsFaulted && !latest.Value.IsCanceled)
            {
                return latest.Value.WaitAsync(ct);
            }
            // The next look has not started yet, so it starts after this caller asked.
            _next ??= TakeAfterAsync(_latest?.Value);
            return _next.WaitAsync(ct);
        }
    }

    private async Task<T> TakeAfterAsync(Task<T>? running)
    {
        await Task.Yield(); // never inside the caller's lock
        if (running is not null)
        {
            try { await running.ConfigureAwait(false); } catch (Exception) { /* its callers see it; this look is new */ }
        }
        Task<T> look;
        lock (_gate)
        {
            var started = Stopwatch.GetTimestamp();
            // Not a caller's token: every caller sharing it waits on it with its own.
            look = Task.Run(() => take(CancellationToken.None), CancellationToken.None);
            _latest = (started, look);
            _next = null;
        }
        return await look.ConfigureAwait(false);
    }
}
