namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Reads an upload's body once and hands every piece read to <paramref name="onData"/> (write to the spool,
/// append to the hash) before passing it on to whoever reads this stream (the S3 part upload). So a block
/// goes to disk, into the hash and to S3 in one pass. Past <paramref name="maxBytes"/> it throws
/// <see cref="UploadTooLargeException"/>. A failure of the body itself is kept in <see cref="SourceFailure"/>,
/// because an HTTP client reading this stream reports it wrapped as its own request failure.
/// </summary>
internal sealed class TeeReadStream(Stream source, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onData, long maxBytes) : ForwardReadStream
{
    public Exception? SourceFailure { get; private set; }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            var read = await source.ReadAsync(buffer, cancellationToken);
            if (read == 0) return 0;
            Count += read;
            if (Count > maxBytes) throw new UploadTooLargeException();
            await onData(buffer[..read], cancellationToken);
            return read;
        }
        catch (Exception e)
        {
            SourceFailure ??= e;
            throw;
        }
    }

    /// <summary>Reads whatever the consumer left unread (all of it when there was none).</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[128 * 1024];
        while (await ReadAsync(buffer, cancellationToken) > 0) { }
    }

}

/// <summary>A stream of known parts read one after another (the committed blocks in their committed order), hashed as it is read.</summary>
internal sealed class ConcatenatedReadStream(IReadOnlyList<string> files, bool hash) : ForwardReadStream
{
    private readonly System.Security.Cryptography.IncrementalHash? _hash = hash ? System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256) : null;
    private int _index;
    private FileStream? _current;

    /// <summary>The SHA-256 of everything read so far (null when not hashing).</summary>
    public string? Sha256 => _hash is null ? null : Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_current is null)
            {
                if (_index >= files.Count) return 0;
                _current = new FileStream(files[_index++], FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 128 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);
            }
            var read = await _current.ReadAsync(buffer, cancellationToken);
            if (read > 0)
            {
                Count += read;
                _hash?.AppendData(buffer.Span[..read]);
                return read;
            }
            await _current.DisposeAsync();
            _current = null;
        }
    }


    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _current?.Dispose();
            _hash?.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>A stream read once, front to back, that counts what it gave out; the rest of <see cref="Stream"/> is refused.</summary>
internal abstract class ForwardReadStream : Stream
{
    /// <summary>Bytes read so far.</summary>
    public long Count { get; protected set; }

    public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Count; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

internal sealed class UploadTooLargeException() : Exception("The upload exceeds the size limit.");
