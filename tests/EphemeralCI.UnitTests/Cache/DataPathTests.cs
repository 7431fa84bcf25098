using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Cache.Apis;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Storage;
using Microsoft.AspNetCore.Http;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

/// <summary>The pure parts of the large-archive data path: block ordinals, the in-order hash, ranges, SigV4 query canonicalization.</summary>
public sealed class DataPathTests
{
    [Theory]
    [InlineData("00000007", 7L)]
    // The Azure SDK's ids: a UUID prefix (which may end in a digit) and a 12-digit zero-padded index.
    [InlineData("5a4c1f2e-0000-4000-8000-00000000000b000000000042", 42L)]
    [InlineData("5a4c1f2e-0000-4000-8000-000000000001000000000042", 42L)]
    [InlineData("block-3", 3L)]
    [InlineData("alpha", null)]
    public void A_block_ordinal_is_the_number_its_id_ends_in(string id, long? ordinal) =>
        Assert.Equal(ordinal, UploadStaging.BlockOrdinal(Encoding.ASCII.GetBytes(id)));

    private static OrderedArchiveHash.Piece Piece(long sequence, byte[] content, string identity) =>
        new(sequence, sequence + 1, identity, () => new MemoryStream(content));

    [Fact]
    public async Task Pieces_arriving_out_of_order_hash_to_the_archive_in_sequence_order()
    {
        var parts = Enumerable.Range(0, 4).Select(_ => RandomNumberGenerator.GetBytes(1000)).ToArray();
        using var hash = new OrderedArchiveHash();

        hash.Stored(Piece(2, parts[2], "c"));
        Assert.True(hash.TryBeginInFlight(0));
        Assert.False(hash.TryBeginInFlight(1));
        hash.Append(parts[0]);
        hash.EndInFlight(Piece(0, parts[0], "a"), stored: true);
        hash.Stored(Piece(3, parts[3], "d"));
        await hash.CatchUpAsync(CancellationToken.None);
        Assert.Null(hash.TryGetHash(["a", "b", "c", "d"]));
        hash.Stored(Piece(1, parts[1], "b"));
        await hash.CatchUpAsync(CancellationToken.None);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(parts.SelectMany(p => p).ToArray())), hash.TryGetHash(["a", "b", "c", "d"]));
        // A block list that omits or reorders pieces is not what was hashed.
        Assert.Null(hash.TryGetHash(["a", "b", "d"]));
        Assert.Null(hash.TryGetHash(["b", "a", "c", "d"]));
    }

    [Fact]
    public void A_piece_rewritten_after_it_was_hashed_or_failing_in_flight_gives_no_hash()
    {
        using var rewritten = new OrderedArchiveHash();
        Assert.True(rewritten.TryBeginInFlight(0));
        rewritten.Append([1, 2, 3]);
        rewritten.EndInFlight(Piece(0, [1, 2, 3], "a"), stored: true);
        rewritten.Stored(Piece(0, [9, 9, 9], "a2"));
        using var failed = new OrderedArchiveHash();
        Assert.True(failed.TryBeginInFlight(0));
        failed.Append([1, 2]);
        failed.EndInFlight(Piece(0, [1, 2, 3], "a"), stored: false);

        Assert.Null(rewritten.TryGetHash(["a"]));
        Assert.Null(failed.TryGetHash(["a"]));
        Assert.False(failed.TryBeginInFlight(0));
    }

    [Fact]
    public void Byte_offsets_as_sequences_need_every_byte_up_to_the_end()
    {
        using var hash = new OrderedArchiveHash();
        Assert.True(hash.TryBeginInFlight(0));
        hash.Append(new byte[10]);
        hash.EndInFlight(new OrderedArchiveHash.Piece(0, 10, "0+10", () => Stream.Null), stored: true);

        Assert.NotNull(hash.TryGetHash(10));
        Assert.Null(hash.TryGetHash(20));
    }

    [Theory]
    [InlineData(null, 0L, 100L)]
    [InlineData("bytes=10-19", 10L, 10L)]
    [InlineData("bytes=90-", 90L, 10L)]
    [InlineData("bytes=95-200", 95L, 5L)]
    [InlineData("bytes=-30", 70L, 30L)]
    [InlineData("bytes=-300", 0L, 100L)]
    [InlineData("bytes=0-1,5-6", 0L, 100L)]
    [InlineData("items=0-1", 0L, 100L)]
    [InlineData("bytes=100-", -1L, -1L)]
    [InlineData("bytes=-0", -1L, -1L)]
    public void Ranges_are_one_satisfiable_byte_range_or_the_whole_archive(string? header, long from, long length)
    {
        var http = new DefaultHttpContext();
        if (header is not null) http.Request.Headers.Range = header;

        var range = BlobTransferApi.RequestedRange(http.Request, 100);

        Assert.Equal((from, length), (range.From, range.Length));
    }

    [Fact]
    public void The_agent_announces_its_own_check_with_the_header_the_cache_reads() =>
        // Drift would not break a restore, only make the cache hash every agent download again.
        Assert.Equal(BlobTransferApi.ClientVerifiesHeader, EphemeralCI.RunnerAgent.Caching.CacheServiceClient.ClientVerifiesHeader);

    [Fact]
    public void Repr_digest_is_the_base64_sha256_of_the_whole_archive()
    {
        var sha = Convert.ToHexStringLower(SHA256.HashData("abc"u8));
        Assert.Equal("sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:", BlobTransferApi.ReprDigest(sha));
    }

    [Fact]
    public void The_s3_client_is_configured_for_the_endpoint_given_and_looks_nothing_up()
    {
        var config = S3BlobStore.ClientConfig(S3Settings.Parse("Endpoint=http://minio:9000;AccessKey=a;SecretKey=b;Region=eu-central-1"));

        Assert.Equal("http://minio:9000/", config.ServiceURL);
        Assert.True(config.ForcePathStyle);
        Assert.Equal("eu-central-1", config.AuthenticationRegion);
        Assert.Equal(Amazon.Runtime.RequestChecksumCalculation.WHEN_REQUIRED, config.RequestChecksumCalculation);
        Assert.Equal(Amazon.Runtime.ResponseChecksumValidation.WHEN_REQUIRED, config.ResponseChecksumValidation);
        Assert.Equal(Amazon.Runtime.DefaultConfigurationMode.Standard, config.DefaultConfigurationMode);
    }
}
