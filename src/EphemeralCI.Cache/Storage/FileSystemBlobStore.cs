namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Cache objects as files under one folder: the embedded default (all-in-one server, no S3), and the
/// store when <c>Cache:FileSystemRoot</c> is set. A put writes a temporary file and renames it into
/// place, so a reader never sees half an object and a failed put leaves the old one intact.
/// </summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    private const int BufferSize = 128 * 1024;
    private const string TempSuffix = ".partial";

    public FileSystemBlobStore(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public Task<BlobInfo?> StatAsync(string key, CancellationToken cancellationToken = default)
    {
        var file = new FileInfo(PathOf(key));
        return Task.FromResult(file.Exists ? new BlobInfo(file.Length, file.LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture)) : null);
    }

    public Task<bool> CopyToAsync(string key, Stream destination, CancellationToken cancellationToken = default) =>
        CopyRangeToAsync(key, 0, long.MaxValue, destination, cancellationToken);

    public async Task<bool> CopyRangeToAsync(string key, long offset, long length, Stream destination, CancellationToken cancellationToken = default)
    {
        FileStream file;
        try
        {
            file = new FileStream(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
        await using (file)
        {
            file.Position = offset;
            var buffer = new byte[BufferSize];
            var left = length;
            while (left > 0)
            {
                int read;
                try
                {
                    read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken);
                }
                catch (IOException e)
                {
                    throw new BlobStoreUnavailableException($"Reading cache object '{key}' from {Root} failed: {e.Message}", e);
                }
                if (read == 0) break;
                left -= read;
                // Errors writing to the destination (a client that hung up) are the caller's, not the store's.
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        return true;
    }

    public async Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default)
    {
        var path = PathOf(key);
        var temp = path + "." + Guid.NewGuid().ToString("N") + TempSuffix;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
            {
                await content.CopyToAsync(file, BufferSize, cancellationToken);
                if (file.Length != length)
                {
                    throw new InvalidOperationException($"Cache object '{key}' was announced as {length} bytes but the stream held {file.Length}.");
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (IOException e)
        {
            throw new BlobStoreUnavailableException($"Writing cache object '{key}' under {Root} failed: {e.Message}", e);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        File.Delete(PathOf(key));
        return Task.CompletedTask;
    }

    /// <summary>
    /// The file of <paramref name="key"/>. Keys are built by the cache itself, but a key that could
    /// leave the root ('..', rooted, backslashes, empty segments) is refused outright rather than trusted.
    /// </summary>
    internal string PathOf(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var segments = key.Split('/');
        if (segments.Any(s => s.Length == 0 || s is "." or ".." || s.EndsWith(TempSuffix, StringComparison.Ordinal)
                || s.IndexOfAny(['\\', '\0', ':']) >= 0))
        {
            throw new ArgumentException($"Object key '{key}' is not a plain relative path.", nameof(key));
        }
        var path = Path.GetFullPath(Path.Combine(Root, Path.Combine(segments)));
        if (!path.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Object key '{key}' resolves outside the store.", nameof(key));
        }
        return path;
    }
}
