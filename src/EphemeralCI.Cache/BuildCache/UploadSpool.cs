using System.Buffers;
using System.Security.Cryptography;

namespace EphemeralCI.Cache.BuildCache;

/// <summary>
/// An upload copied to a temporary file while its SHA-256 is computed, so it can be checked before
/// anything is stored and then sent to S3 with a known length, without holding it in memory.
/// Disposing deletes the file.
/// </summary>
public sealed class UploadSpool : IAsyncDisposable
{
    private const int BufferSize = 128 * 1024;

    private readonly FileStream _file;
    private readonly string _path;

    private UploadSpool(FileStream file, string path, long length, string sha256)
    {
        _file = file;
        _path = path;
        Length = length;
        Sha256 = sha256;
    }

    public long Length { get; }

    /// <summary>Lowercase hex SHA-256 of the content.</summary>
    public string Sha256 { get; }

    /// <summary>The content, from its start.</summary>
    public Stream OpenContent()
    {
        _file.Position = 0;
        return _file;
    }

    /// <summary>
    /// Copies <paramref name="source"/> into a new file in <paramref name="directory"/>. Returns null,
    /// having deleted the file, as soon as the source exceeds <paramref name="maxBytes"/>.
    /// </summary>
    public static async Task<UploadSpool?> CreateAsync(Stream source, string directory, long maxBytes, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"upload-{Guid.NewGuid():N}.tmp");
        // DeleteOnClose: the file goes away however the request ends; the finally below covers a
        // failure before the stream exists.
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, BufferSize,
            FileOptions.Asynchronous | FileOptions.DeleteOnClose);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var keep = false;
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long length = 0;
            int read;
            while ((read = await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken)) > 0)
            {
                length += read;
                if (length > maxBytes) return null;
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
            await file.FlushAsync(cancellationToken);
            keep = true;
            return new UploadSpool(file, path, length, Convert.ToHexStringLower(hash.GetHashAndReset()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (!keep)
            {
                await file.DisposeAsync();
                File.Delete(path);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _file.DisposeAsync();
        File.Delete(_path); // DeleteOnClose already did it where the platform supports it.
    }

    /// <summary>Where the content is spooled (for tests that prove it is deleted).</summary>
    internal string SpoolPath => _path;
}
