using System.Security.Cryptography;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// A write-through stream to a client that hashes what passes and always holds back the most recent
/// write. Only <see cref="CompleteAsync"/> releases that last piece, and only when the whole object
/// hashed to the recorded SHA-256 and had the recorded length. A corrupted or truncated object thus
/// never reaches the client whole: with Content-Length announced, the client sees a short body and
/// fails instead of extracting it.
/// </summary>
public sealed class HashCheckingStream(Stream inner, string expectedSha256, long expectedLength) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private byte[] _held = [];
    private int _heldCount;
    private long _length;

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty) return;
        if (_heldCount > 0) await inner.WriteAsync(_held.AsMemory(0, _heldCount), cancellationToken);
        _hash.AppendData(buffer.Span);
        _length += buffer.Length;
        if (_held.Length < buffer.Length) _held = new byte[buffer.Length];
        buffer.CopyTo(_held);
        _heldCount = buffer.Length;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    /// <summary>Releases the held piece when length and hash match; returns false (and sends nothing more) otherwise.</summary>
    public async Task<bool> CompleteAsync(CancellationToken cancellationToken)
    {
        var actual = Convert.ToHexStringLower(_hash.GetHashAndReset());
        if (_length != expectedLength || !string.Equals(actual, expectedSha256, StringComparison.Ordinal)) return false;
        if (_heldCount > 0) await inner.WriteAsync(_held.AsMemory(0, _heldCount), cancellationToken);
        _heldCount = 0;
        return true;
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
