using EphemeralCI.Cache.Entries;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

/// <summary>v1 chunks mapped to multipart parts: the part size learned from the chunks, and every layout that cannot be parts refused.</summary>
public sealed class ChunkPartMapTests
{
    private const long Min = 5;
    private const int MaxParts = 100;

    private static ChunkPartMap Map() => new(Min, MaxParts);

    /// <summary>Begin and End of a stored chunk, forwarded when it got a part number.</summary>
    private static int? Store(ChunkPartMap map, long offset, long length, long? total)
    {
        var number = map.Begin(offset, length, total);
        map.End(offset, stored: true, number is { } n ? $"etag-{n}" : null);
        return number;
    }

    [Fact]
    public void Equal_chunks_in_any_order_are_consecutive_parts_and_the_short_last_one_ends_them()
    {
        var map = Map();

        // The toolkit's first wave: offset 0 need not come first; the announced total tells the last chunk apart.
        Assert.Equal(3, Store(map, 16, 8, total: 35));
        Assert.Equal(5, Store(map, 32, 3, total: 35));
        Assert.Equal(1, Store(map, 0, 8, total: 35));
        Assert.Equal(4, Store(map, 24, 8, total: 35));
        Assert.Equal(2, Store(map, 8, 8, total: 35));

        Assert.Equal(
            [new ChunkPart(1, 0, 8, "etag-1"), new ChunkPart(2, 8, 8, "etag-2"), new ChunkPart(3, 16, 8, "etag-3"), new ChunkPart(4, 24, 8, "etag-4"), new ChunkPart(5, 32, 3, "etag-5")],
            map.PartsFor(35));
    }

    [Fact]
    public void Without_an_announced_total_only_offset_0_sets_the_part_size_and_earlier_chunks_are_uploaded_at_commit()
    {
        var map = Map();

        // Could be the last chunk (then the part size is anything that divides 8): not forwarded.
        Assert.Null(Store(map, 8, 8, total: null));
        Assert.Equal(1, Store(map, 0, 8, total: null));
        Assert.Equal(3, Store(map, 16, 2, total: null));

        Assert.Equal([new ChunkPart(1, 0, 8, "etag-1"), new ChunkPart(2, 8, 8, null), new ChunkPart(3, 16, 2, "etag-3")], map.PartsFor(18));
    }

    [Fact]
    public void A_single_chunk_is_one_part()
    {
        var map = Map();
        Assert.Equal(1, Store(map, 0, 7, total: 7));
        Assert.Equal([new ChunkPart(1, 0, 7, "etag-1")], map.PartsFor(7));
    }

    public static TheoryData<string, (long Offset, long Length)[], long?> Misfits => new()
    {
        // Parts under the store's minimum (a small archive, or a client with small chunks).
        { "small", [(0, 3), (3, 3), (6, 1)], 7 },
        { "unequal", [(0, 8), (8, 9), (17, 2)], 19 },
        { "short middle", [(0, 8), (8, 6), (14, 8)], 22 },
        { "overlapping", [(0, 8), (8, 8), (4, 8)], 16 },
        // Without a total a short chunk may be the last one: forwarded, but the next chunk does not fit.
        { "short middle, no total", [(0, 8), (8, 2), (10, 8)], null },
        { "too many parts", [(0, 5), (5, 5), (500, 5)], 1000 },
    };

    [Theory]
    [MemberData(nameof(Misfits))]
    public void Chunks_that_cannot_be_parts_give_no_parts(string layout, (long Offset, long Length)[] chunks, long? total)
    {
        var map = Map();
        foreach (var (offset, length) in chunks) Store(map, offset, length, total);

        Assert.True(map.PartsFor(chunks.Max(c => c.Offset + c.Length)) is null, layout);
    }

    [Fact]
    public void A_chunk_written_twice_at_once_stops_the_forwarding()
    {
        var map = Map();
        Assert.Equal(1, map.Begin(0, 8, 16));
        Assert.Null(map.Begin(0, 8, 16));
        map.End(0, stored: true, "a");
        map.End(0, stored: true, "b");

        Assert.Null(map.Begin(8, 8, 16));
        map.End(8, stored: true, null);
        Assert.Null(map.PartsFor(16));
    }

    [Fact]
    public void A_retried_chunk_replaces_its_part_and_a_failed_one_leaves_a_hole()
    {
        var map = Map();
        Store(map, 0, 8, 16);
        Store(map, 8, 8, 16);
        // Retried after a response the client never saw: the same part again, with its new ETag.
        Assert.Equal(2, map.Begin(8, 8, 16));
        map.End(8, stored: true, "again");
        Assert.Equal([new ChunkPart(1, 0, 8, "etag-1"), new ChunkPart(2, 8, 8, "again")], map.PartsFor(16));

        // Retried and broken off midway: the spool no longer holds what the part holds.
        Assert.Equal(2, map.Begin(8, 8, 16));
        map.End(8, stored: false, null);
        Assert.Null(map.PartsFor(16));
    }

    [Fact]
    public void A_total_other_than_the_chunks_or_a_chunk_still_in_flight_gives_no_parts()
    {
        var map = Map();
        Store(map, 0, 8, 16);
        map.Begin(8, 8, 16);

        Assert.Null(map.PartsFor(16));
        map.End(8, stored: true, "b");
        Assert.Null(map.PartsFor(24));
        Assert.Null(map.PartsFor(12));
        Assert.NotNull(map.PartsFor(16));

        map.Discard();
        Assert.Null(map.PartsFor(16));
    }
}
