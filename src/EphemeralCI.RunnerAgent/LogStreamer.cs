namespace EphemeralCI.RunnerAgent;

/// <summary>
/// Buffers job output and ships it in chunks at their UTF-8 byte offset: flushed when 64 KiB are
/// waiting or every ~200 ms, so the log is live without one request per line. A chunk never
/// ends inside a multi-byte character, so every chunk is valid text on its own.
/// </summary>
public sealed class LogStreamer : IAsyncDisposable
{
    public const int MaxChunkBytes = 64 * 1024;
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);

    private readonly Func<long, ReadOnlyMemory<byte>, CancellationToken, Task> _post;
    private readonly MemoryStream _pending = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _timer;
    private long _offset;

    public LogStreamer(Func<long, ReadOnlyMemory<byte>, CancellationToken, Task> post)
    {
        _post = post;
        _timer = Task.Run(TimerLoopAsync);
    }

    /// <summary>Bytes already accepted by the intake.</summary>
    public long Offset => Interlocked.Read(ref _offset);

    public Task WriteLineAsync(string text, CancellationToken ct) =>
        WriteAsync(System.Text.Encoding.UTF8.GetBytes(text + "\n"), ct);

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            _pending.Write(bytes.Span);
            if (_pending.Length >= MaxChunkBytes) await FlushLockedAsync(force: false, ct);
        }
        finally { _gate.Release(); }
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try { await FlushLockedAsync(force: true, ct); }
        finally { _gate.Release(); }
    }

    private async Task FlushLockedAsync(bool force, CancellationToken ct)
    {
        while (_pending.Length > 0)
        {
            var buffer = _pending.GetBuffer().AsMemory(0, (int)_pending.Length);
            var take = Math.Min(buffer.Length, MaxChunkBytes);
            var send = Utf8Boundary.CompletePrefixLength(buffer.Span[..take]);
            // Only an unfinished character is held back, and a final flush sends even that rather than lose it.
            if (send == 0 && force) send = take;
            if (send == 0) return;
            await _post(_offset, buffer[..send], ct);
            Interlocked.Add(ref _offset, send);
            var rest = buffer[send..].ToArray();
            _pending.SetLength(0);
            _pending.Write(rest);
        }
    }

    private async Task TimerLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(FlushInterval, _stop.Token);
                await _gate.WaitAsync(_stop.Token);
                try { await FlushLockedAsync(force: false, _stop.Token); }
                finally { _gate.Release(); }
            }
            catch (OperationCanceledException) { return; }
            // The log is closed: the job's own path stops on the same answer at its next report.
            catch (JobEndedException) { return; }
            catch (Exception ex)
            {
                // The next flush retries from the same offset; nothing is dropped.
                Console.Error.WriteLine($"runner-agent: log upload failed, will retry: {ex.Message}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _timer;
        _stop.Dispose();
    }
}

public static class Utf8Boundary
{
    /// <summary>Length of the longest prefix of <paramref name="bytes"/> that does not end inside a UTF-8 sequence.</summary>
    public static int CompletePrefixLength(ReadOnlySpan<byte> bytes)
    {
        // Look back at most 3 bytes for the lead byte of a sequence that may be unfinished.
        for (var back = 1; back <= Math.Min(4, bytes.Length); back++)
        {
            var b = bytes[^back];
            if ((b & 0b1100_0000) == 0b1000_0000) continue; // continuation byte
            var needed = b >= 0b1111_0000 ? 4 : b >= 0b1110_0000 ? 3 : b >= 0b1100_0000 ? 2 : 1;
            return needed > back ? bytes.Length - back : bytes.Length;
        }
        return bytes.Length; // only continuation bytes: not UTF-8 anyway, pass through
    }
}
