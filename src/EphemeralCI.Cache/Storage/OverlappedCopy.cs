using System.Buffers;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// A stream copy that reads the next buffer while the previous one is being written. A download through the
/// cache reads from S3 and writes to the client's socket; <see cref="Stream.CopyToAsync(Stream)"/> takes turns
/// (nothing is read while a write waits for the client to drain Kestrel's buffer, nothing is sent while S3 is
/// read), so the slower side's waits add up instead of hiding behind the other's.
/// </summary>
internal static class OverlappedCopy
{
    public static async Task CopyAsync(Stream source, Stream destination, int bufferSize, CancellationToken cancellationToken)
    {
        // Pooled: every download and every range request copies, and 1 MiB arrays would land on the large object heap.
        var (current, next) = (ArrayPool<byte>.Shared.Rent(bufferSize), ArrayPool<byte>.Shared.Rent(bufferSize));
        try
        {
            var count = await source.ReadAtLeastAsync(current.AsMemory(0, bufferSize), bufferSize, throwOnEndOfStream: false, cancellationToken);
            while (count > 0)
            {
                var writing = destination.WriteAsync(current.AsMemory(0, count), cancellationToken).AsTask();
                var reading = source.ReadAtLeastAsync(next.AsMemory(0, bufferSize), bufferSize, throwOnEndOfStream: false, cancellationToken).AsTask();
                // Both end before either buffer is touched again (or returned), also when one of them fails.
                await Task.WhenAll(writing, reading);
                (current, next, count) = (next, current, reading.Result);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(current);
            ArrayPool<byte>.Shared.Return(next);
        }
    }
}
