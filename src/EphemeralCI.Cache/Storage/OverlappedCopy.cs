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
        var (current, next) = (new byte[bufferSize], new byte[bufferSize]);
        var count = await source.ReadAtLeastAsync(current, bufferSize, throwOnEndOfStream: false, cancellationToken);
        while (count > 0)
        {
            var writing = destination.WriteAsync(current.AsMemory(0, count), cancellationToken).AsTask();
            var reading = source.ReadAtLeastAsync(next, bufferSize, throwOnEndOfStream: false, cancellationToken).AsTask();
            // Both end before either buffer is touched again, also when one of them fails.
            await Task.WhenAll(writing, reading);
            (current, next, count) = (next, current, reading.Result);
        }
    }
}
