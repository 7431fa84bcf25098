using System.Security.Cryptography;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// The SHA-256 of an archive whose pieces (Azure blocks, v1 chunks) arrive in parallel and out of order,
/// computed as they arrive so commit does not read the archive again. Each piece has a sequence number
/// (a block's ordinal, a chunk's offset) and the sequence that follows it. A piece that starts exactly
/// where the hash stands is hashed while it streams in; a piece that arrives early is hashed later, from
/// where it was stored, as soon as the pieces before it are in. Anything unusual — a piece rewritten after
/// it was hashed, a failed in-flight piece, a gap that never fills — only makes the result unavailable, and
/// commit then hashes the committed pieces in their committed order itself: never a wrong hash, at worst a slower commit.
/// </summary>
internal sealed class OrderedArchiveHash : IDisposable
{
    private readonly Lock _gate = new();
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly SortedDictionary<long, Piece> _waiting = [];
    private readonly List<string> _hashed = [];
    private long _next;
    private bool _busy;
    private bool _broken;

    /// <param name="Identity">What exactly was stored (block id and write), compared with what is committed.</param>
    /// <param name="Open">Opens the stored piece, for hashing it after it arrived out of order.</param>
    public sealed record Piece(long Sequence, long NextSequence, string Identity, Func<Stream> Open);

    /// <summary>True when <paramref name="sequence"/> is next and nothing else is hashing: the caller then appends while it streams.</summary>
    public bool TryBeginInFlight(long sequence)
    {
        lock (_gate)
        {
            if (_busy || _broken || sequence != _next) return false;
            _busy = true;
            return true;
        }
    }

    /// <summary>Bytes of the in-flight piece, in order. Only between a successful <see cref="TryBeginInFlight"/> and <see cref="EndInFlight"/>.</summary>
    public void Append(ReadOnlySpan<byte> data) => _hash.AppendData(data);

    public void EndInFlight(Piece piece, bool stored)
    {
        lock (_gate)
        {
            _busy = false;
            if (!stored)
            {
                // Part of it is in the hash already; nothing can take it out again.
                _broken = true;
                return;
            }
            _hashed.Add(piece.Identity);
            _next = piece.NextSequence;
        }
    }

    /// <summary>A piece stored without being hashed (it was not next); hashed by <see cref="CatchUpAsync"/> when its turn comes.</summary>
    public void Stored(Piece piece)
    {
        lock (_gate)
        {
            if (piece.Sequence < _next) _broken = true;
            else _waiting[piece.Sequence] = piece;
        }
    }

    /// <summary>Hashes waiting pieces whose turn has come, reading them back (recently written, so from the page cache).</summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[128 * 1024];
        while (true)
        {
            Piece? piece;
            lock (_gate)
            {
                if (_busy || _broken || !_waiting.Remove(_next, out piece)) return;
                _busy = true;
            }
            var hashed = false;
            try
            {
                await using var stored = piece.Open();
                int read;
                while ((read = await stored.ReadAsync(buffer, cancellationToken)) > 0) _hash.AppendData(buffer.AsSpan(0, read));
                hashed = true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or OperationCanceledException)
            {
                // Gone (rewritten, deleted) or the request ended: commit will hash the committed pieces itself.
            }
            finally
            {
                EndInFlight(piece, hashed);
            }
        }
    }

    /// <summary>The hash, if exactly the pieces <paramref name="identities"/> were hashed, in this order; otherwise null.</summary>
    public string? TryGetHash(IReadOnlyList<string> identities)
    {
        lock (_gate)
        {
            return !_busy && !_broken && _hashed.SequenceEqual(identities) ? Convert.ToHexStringLower(_hash.GetCurrentHash()) : null;
        }
    }

    /// <summary>The hash, if pieces were hashed without a gap up to <paramref name="end"/> and nothing else is waiting; otherwise null.</summary>
    public string? TryGetHash(long end)
    {
        lock (_gate)
        {
            return !_busy && !_broken && _next == end && _waiting.Count == 0 ? Convert.ToHexStringLower(_hash.GetCurrentHash()) : null;
        }
    }

    public void Dispose() => _hash.Dispose();
}
