namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Which part of the entry's multipart upload each v1 chunk is. The toolkit cuts the archive into equal chunks
/// (32 MiB unless the client says otherwise) and only the last one is shorter, so for a part size P the chunk at
/// offset o is part o / P + 1: consecutive part numbers, which every S3 flavour accepts. P is learned from the
/// chunks: the chunk at offset 0, or any chunk that starts at a multiple of its own length and is not the last
/// (the size announced at reserve says which one is; chunks arrive in parallel, so offset 0 may come late).
/// A chunk that does not fit (another length, a part size under the store's minimum, overlapping writes,
/// two writes of one range at once) ends the forwarding for the upload: commit then stores the spooled
/// archive in one stream, as it does for any upload it cannot take from parts.
/// </summary>
internal sealed class ChunkPartMap(long minPartBytes, int maxPartNumber)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Chunk> _chunks = [];
    private long? _partSize;
    private bool _misfit;

    /// <summary>
    /// A chunk starts to arrive. Returns its part number when it should be forwarded as it streams in, or null
    /// (it is then only spooled; commit uploads it from there if the other chunks make parts).
    /// </summary>
    /// <param name="announcedTotal">The archive size announced at reserve, when there was one.</param>
    public int? Begin(long offset, long length, long? announcedTotal)
    {
        lock (_gate)
        {
            if (_chunks.TryGetValue(offset, out var earlier) && (earlier.InFlight || earlier.Length != length)) _misfit = true;
            // Stored again: until it is, the spool holds neither the old nor the new bytes for certain.
            _chunks[offset] = new Chunk(length) { InFlight = true };
            if (_misfit) return null;

            var last = announcedTotal is { } total ? offset + length == total : (bool?)null;
            if (_partSize is null && (offset == 0 || (last == false && offset % length == 0))) _partSize = length;
            if (_partSize is not { } partSize) return null;

            var fits = partSize >= minPartBytes && offset % partSize == 0
                && (length == partSize || (length < partSize && last != false))
                && offset / partSize < maxPartNumber;
            if (!fits) _misfit = true;
            return fits ? (int)(offset / partSize) + 1 : null;
        }
    }

    /// <summary>The chunk ended: stored (forwarded as a part with <paramref name="etag"/>, or not) or not stored at all.</summary>
    public void End(long offset, bool stored, string? etag)
    {
        lock (_gate)
        {
            if (!_chunks.TryGetValue(offset, out var chunk)) return;
            if (!stored)
            {
                _chunks.Remove(offset);
                return;
            }
            chunk.InFlight = false;
            chunk.ETag = etag;
        }
    }

    /// <summary>The data was replaced by other means (Put Blob, a block list): the chunks no longer describe it.</summary>
    public void Discard()
    {
        lock (_gate) _misfit = true;
    }

    /// <summary>
    /// The parts that make an archive of <paramref name="total"/> bytes: every part [i·P, min((i+1)·P, total))
    /// stored as exactly one chunk and no other chunk stored; null when the chunks do not make it.
    /// </summary>
    public IReadOnlyList<ChunkPart>? PartsFor(long total)
    {
        lock (_gate)
        {
            if (_misfit || _partSize is not { } partSize || partSize < minPartBytes || total <= 0) return null;
            var count = (total + partSize - 1) / partSize;
            if (count > maxPartNumber || _chunks.Count != count) return null;
            var parts = new List<ChunkPart>((int)count);
            for (var i = 0; i < count; i++)
            {
                var offset = i * partSize;
                var length = Math.Min(partSize, total - offset);
                if (!_chunks.TryGetValue(offset, out var chunk) || chunk.InFlight || chunk.Length != length) return null;
                parts.Add(new ChunkPart(i + 1, offset, length, chunk.ETag));
            }
            return parts;
        }
    }

    private sealed class Chunk(long length)
    {
        public long Length { get; } = length;
        public bool InFlight { get; set; }
        public string? ETag { get; set; }
    }
}

/// <param name="ETag">Null when the chunk was stored but not forwarded (commit uploads it from the spool).</param>
internal sealed record ChunkPart(int Number, long Offset, long Length, string? ETag);
