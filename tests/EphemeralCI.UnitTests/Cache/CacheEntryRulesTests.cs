using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Cache;
using EphemeralCI.Cache.Apis;
using EphemeralCI.Cache.Entries;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

public sealed class CacheKeyRulesTests
{
    [Theory]
    [InlineData("npm-linux-x64-4f1c")]
    [InlineData("deps/with/slashes")]
    [InlineData("ünïcode-ключ")]
    public void Ordinary_keys_are_accepted(string key) => Assert.Null(CacheKeyRules.CheckKey(key));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a,b", "commas")]
    [InlineData("a\nb", "control")]
    [InlineData("../../etc/passwd", "'..'")]
    [InlineData("deps/../other", "'..'")]
    [InlineData("deps\\..\\other", "'..'")]
    public void Bad_keys_are_refused_with_the_reason(string key, string reason) =>
        Assert.Contains(reason, CacheKeyRules.CheckKey(key));

    [Fact]
    public void Keys_up_to_512_characters_are_accepted_and_longer_ones_refused()
    {
        Assert.Null(CacheKeyRules.CheckKey(new string('k', 512)));
        Assert.Contains("512", CacheKeyRules.CheckKey(new string('k', 513)));
    }

    [Fact]
    public void Lookup_names_each_bad_field()
    {
        var errors = CacheKeyRules.CheckLookup("ok", ["fine", "bad,key"], "");

        Assert.NotNull(errors);
        Assert.Equal(["restore_keys", "version"], errors.Keys.Order());
        Assert.Contains("[1]", errors["restore_keys"][0]);
    }

    [Fact]
    public void More_than_ten_keys_in_one_lookup_are_refused()
    {
        var errors = CacheKeyRules.CheckLookup("k", Enumerable.Range(0, 10).Select(i => $"r{i}").ToList(), "v");

        Assert.NotNull(errors);
        Assert.Contains("restore_keys", errors.Keys);
    }
}

public sealed class SignedUrlsTests
{
    private readonly ManualClock _clock = new(DateTimeOffset.Parse("2026-11-25T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private SignedUrls Signer(string? key = null) => new(Options.Create(new CacheOptions
    {
        SignedUrlLifetime = TimeSpan.FromMinutes(10),
        UrlSigningKey = key ?? Convert.ToBase64String(new byte[32]),
    }), _clock);

    private static Dictionary<string, string> Parse(string query) =>
        query.Split('&').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);

    [Fact]
    public void A_signature_is_valid_for_its_purpose_entry_and_job_until_it_expires()
    {
        var job = Guid.NewGuid();
        var q = Parse(Signer().Sign(SignedUrlPurpose.Download, 42, job));

        var now = Signer().Verify(SignedUrlPurpose.Download, 42, q["job"], q["exp"], q["sig"]);
        _clock.Advance(TimeSpan.FromMinutes(11));
        var later = Signer().Verify(SignedUrlPurpose.Download, 42, q["job"], q["exp"], q["sig"]);

        Assert.Equal(new SignedUrlCheck(SignedUrlStatus.Valid, job), now);
        Assert.Equal(SignedUrlStatus.Expired, later.Status);
    }

    [Fact]
    public void Changing_the_entry_purpose_job_expiry_or_key_breaks_the_signature()
    {
        var q = Parse(Signer().Sign(SignedUrlPurpose.Download, 42, Guid.NewGuid()));

        Assert.Equal(SignedUrlStatus.BadSignature, Signer().Verify(SignedUrlPurpose.Download, 43, q["job"], q["exp"], q["sig"]).Status);
        Assert.Equal(SignedUrlStatus.BadSignature, Signer().Verify(SignedUrlPurpose.Upload, 42, q["job"], q["exp"], q["sig"]).Status);
        Assert.Equal(SignedUrlStatus.BadSignature, Signer().Verify(SignedUrlPurpose.Download, 42, Guid.NewGuid().ToString("N"), q["exp"], q["sig"]).Status);
        Assert.Equal(SignedUrlStatus.BadSignature, Signer().Verify(SignedUrlPurpose.Download, 42, q["job"], (long.Parse(q["exp"], System.Globalization.CultureInfo.InvariantCulture) + 3600).ToString(System.Globalization.CultureInfo.InvariantCulture), q["sig"]).Status);
        Assert.Equal(SignedUrlStatus.BadSignature, Signer(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))).Verify(SignedUrlPurpose.Download, 42, q["job"], q["exp"], q["sig"]).Status);
        Assert.Equal(SignedUrlStatus.Malformed, Signer().Verify(SignedUrlPurpose.Download, 42, null, q["exp"], q["sig"]).Status);
    }

    [Fact]
    public void A_short_configured_key_stops_start_up_with_the_setting_name()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Signer(Convert.ToBase64String(new byte[16])));

        Assert.Contains("Cache:UrlSigningKey", e.Message);
    }
}

public sealed class HashCheckingStreamTests
{
    [Fact]
    public async Task Matching_content_passes_through_whole()
    {
        var content = RandomNumberGenerator.GetBytes(100_000);
        var sink = new MemoryStream();
        var checking = new HashCheckingStream(sink, Convert.ToHexStringLower(SHA256.HashData(content)), content.Length);

        await new MemoryStream(content).CopyToAsync(checking, 8192);
        var ok = await checking.CompleteAsync(CancellationToken.None);

        Assert.True(ok);
        Assert.Equal(content, sink.ToArray());
    }

    [Fact]
    public async Task Corrupted_content_never_reaches_the_client_whole()
    {
        var content = RandomNumberGenerator.GetBytes(100_000);
        var recorded = Convert.ToHexStringLower(SHA256.HashData(content));
        content[99_999] ^= 0xFF;
        var sink = new MemoryStream();
        var checking = new HashCheckingStream(sink, recorded, content.Length);

        await new MemoryStream(content).CopyToAsync(checking, 8192);
        var ok = await checking.CompleteAsync(CancellationToken.None);

        Assert.False(ok);
        Assert.True(sink.Length < content.Length);
    }
}

public sealed class InProcessCacheReservationsTests
{
    [Fact]
    public async Task One_writer_per_reservation_until_it_releases_or_expires()
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var reservations = new InProcessCacheReservations(clock);
        Guid a = Guid.NewGuid(), b = Guid.NewGuid();

        Assert.True(await reservations.TryAcquireAsync("r", a, TimeSpan.FromMinutes(1)));
        Assert.True(await reservations.TryAcquireAsync("r", a, TimeSpan.FromMinutes(1)));
        Assert.False(await reservations.TryAcquireAsync("r", b, TimeSpan.FromMinutes(1)));
        await reservations.ReleaseAsync("r", b);
        Assert.False(await reservations.TryAcquireAsync("r", b, TimeSpan.FromMinutes(1)));
        await reservations.ReleaseAsync("r", a);
        Assert.True(await reservations.TryAcquireAsync("r", b, TimeSpan.FromMinutes(1)));
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.True(await reservations.TryAcquireAsync("r", a, TimeSpan.FromMinutes(1)));
    }
}

public sealed class ProtocolParsingTests
{
    [Theory]
    [InlineData("bytes 0-99/*", 0, 99)]
    [InlineData("bytes 33554432-67108863/*", 33554432, 67108863)]
    [InlineData("bytes 5-5/6", 5, 5)]
    public void Content_range_of_the_v1_chunks_parses(string header, long start, long end)
    {
        Assert.True(ActionsCacheV1Api.TryParseContentRange(header, out var s, out var e));
        Assert.Equal((start, end), (s, e));
    }

    [Theory]
    [InlineData("")]
    [InlineData("bytes 9-1/*")]
    [InlineData("bytes -1-5/*")]
    [InlineData("items 0-1/*")]
    [InlineData("bytes 0-99999999999999999999/*")]
    public void Bad_content_ranges_are_refused(string header) => Assert.False(ActionsCacheV1Api.TryParseContentRange(header, out _, out _));

    [Fact]
    public async Task Azure_block_list_parses_in_order()
    {
        var xml = """<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>AAAA</Latest><Uncommitted>AQEB</Uncommitted><Latest>AgIC</Latest></BlockList>""";

        var ids = await BlobTransferApi.ReadBlockListAsync(new MemoryStream(Encoding.UTF8.GetBytes(xml)), CancellationToken.None);

        Assert.NotNull(ids);
        Assert.Equal([[0, 0, 0], [1, 1, 1], [2, 2, 2]], ids.Select(i => i.ToArray()).ToArray());
    }

    [Theory]
    [InlineData("<BlockList/>")]
    [InlineData("<Other><Latest>AAAA</Latest></Other>")]
    [InlineData("<BlockList><Latest>not base64!</Latest></BlockList>")]
    [InlineData("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><BlockList><Latest>&e;</Latest></BlockList>")]
    [InlineData("<BlockList><Latest>AAAA</Latest>")]
    public async Task Malformed_block_lists_are_refused(string xml) =>
        Assert.Null(await BlobTransferApi.ReadBlockListAsync(new MemoryStream(Encoding.UTF8.GetBytes(xml)), CancellationToken.None));
}

internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    private DateTimeOffset _now = now;
    public void Advance(TimeSpan by) => _now += by;
    public override DateTimeOffset GetUtcNow() => _now;
}
