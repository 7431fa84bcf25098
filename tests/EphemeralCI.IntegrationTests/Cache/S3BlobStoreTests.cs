using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using EphemeralCI.Cache.Storage;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>The S3 store against the real S3 emulator, and against nothing at all.</summary>
public sealed class S3BlobStoreTests : IAsyncLifetime, IDisposable
{
    private readonly S3BlobStore _store = new(S3Settings.Parse($"{RealServices.S3};Bucket={CacheTestApp.NewBucketName()}"));

    public async Task InitializeAsync() => Assert.True(await _store.EnsureBucketAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _store.Dispose();

    [Fact]
    public async Task Multipart_sized_object_round_trips_and_is_deleted()
    {
        // Above the store's single-PUT size, so the upload goes out in parts (the last one short).
        var content = RandomNumberGenerator.GetBytes((int)(2 * S3BlobStore.PutPartBytes) + 7);
        const string key = "t/a/object";

        await _store.PutAsync(key, new MemoryStream(content), content.Length);
        var info = await _store.StatAsync(key);
        var copy = new MemoryStream();
        var found = await _store.CopyToAsync(key, copy);
        await _store.DeleteAsync(key);

        Assert.Equal(content.Length, info!.Length);
        Assert.True(found);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(copy.ToArray()));
        Assert.Null(await _store.StatAsync(key));
    }

    [Fact]
    public async Task Parts_uploaded_out_of_order_complete_in_part_number_order_and_read_back_by_range_and_presigned_url()
    {
        var first = RandomNumberGenerator.GetBytes(5 * 1024 * 1024);
        var last = RandomNumberGenerator.GetBytes(1000);
        const string key = "t/multipart/object";

        var uploadId = await _store.StartMultipartAsync(key);
        var etag2 = await _store.UploadPartAsync(key, uploadId, 7, new MemoryStream(last), last.Length);
        var etag1 = await _store.UploadPartAsync(key, uploadId, 3, new MemoryStream(first), first.Length);
        await _store.CompleteMultipartAsync(key, uploadId, [new BlobPart(3, etag1), new BlobPart(7, etag2)]);
        var range = new MemoryStream();
        var found = await _store.CopyRangeToAsync(key, first.Length - 10, 20, range);
        using var http = new HttpClient();
        var presigned = await http.GetByteArrayAsync(await _store.PresignGetAsync(key, TimeSpan.FromMinutes(1)));

        var whole = first.Concat(last).ToArray();
        Assert.Equal(whole.Length, (await _store.StatAsync(key))!.Length);
        Assert.True(found);
        Assert.Equal(whole[(first.Length - 10)..(first.Length + 10)], range.ToArray());
        Assert.Equal(whole, presigned);
        Assert.False(await _store.CopyRangeToAsync("t/missing", 0, 10, Stream.Null));
    }

    [Fact]
    public async Task Missing_object_is_null_false_and_deleting_it_is_fine()
    {
        Assert.Null(await _store.StatAsync("t/missing"));
        Assert.False(await _store.CopyToAsync("t/missing", Stream.Null));
        await _store.DeleteAsync("t/missing");
    }

    [Fact]
    public async Task Second_ensure_finds_the_bucket()
    {
        Assert.False(await _store.EnsureBucketAsync());
    }

    [Fact]
    public async Task Unreachable_s3_is_reported_as_unavailable_not_as_missing()
    {
        using var nowhere = new S3BlobStore(S3Settings.Parse($"Endpoint=http://127.0.0.1:{ClosedPort()};AccessKey=a;SecretKey=b"));

        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => nowhere.StatAsync("k"));
        await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => nowhere.PutAsync("k", new MemoryStream([1]), 1));
    }

    [Fact]
    public async Task Start_up_gives_up_on_unreachable_s3_naming_the_setting()
    {
        var spool = Path.Combine(Path.GetTempPath(), "eci-it-spool-" + Guid.NewGuid().ToString("N"));
        var builder = CacheTestApp.CreateBuilder($"Endpoint=http://127.0.0.1:{ClosedPort()};AccessKey=a;SecretKey=b", spool, 1024);
        builder.Configuration["Cache:StorageStartupTimeout"] = "00:00:01";
        await using var app = builder.Build();

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => app.StartAsync());

        Assert.Contains("ConnectionStrings:minio", e.Message);
    }

    [Fact]
    public void Without_an_s3_setting_objects_go_to_a_local_folder()
    {
        var root = Path.Combine(Path.GetTempPath(), "eci-it-objects-" + Guid.NewGuid().ToString("N"));
        var builder = CacheTestApp.CreateBuilder("", Path.GetTempPath(), 1024, settings: new Dictionary<string, string?> { ["Cache:FileSystemRoot"] = root });
        using var app = builder.Build();

        var store = Assert.IsType<FileSystemBlobStore>(app.Services.GetRequiredService<IBlobStore>());

        Assert.Equal(Path.GetFullPath(root), store.Root);
        Directory.Delete(root, recursive: true);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
