using EphemeralCI.Cache.Storage;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

public sealed class FileSystemBlobStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "eci-ut-fs-" + Guid.NewGuid().ToString("N"));
    private readonly FileSystemBlobStore _store;

    public FileSystemBlobStoreTests() => _store = new FileSystemBlobStore(_root);

    [Fact]
    public async Task Put_stat_read_delete_round_trip()
    {
        byte[] content = [1, 2, 3, 4, 5];

        await _store.PutAsync("entries/abc/1-x", new MemoryStream(content), content.Length);
        var stat = await _store.StatAsync("entries/abc/1-x");
        var read = new MemoryStream();
        var found = await _store.CopyToAsync("entries/abc/1-x", read);
        await _store.DeleteAsync("entries/abc/1-x");

        Assert.Equal(5, stat?.Length);
        Assert.True(found);
        Assert.Equal(content, read.ToArray());
        Assert.Null(await _store.StatAsync("entries/abc/1-x"));
        Assert.False(await _store.CopyToAsync("entries/abc/1-x", new MemoryStream()));
    }

    [Fact]
    public async Task A_put_whose_stream_does_not_match_its_length_keeps_the_old_object()
    {
        await _store.PutAsync("k", new MemoryStream([9, 9]), 2);

        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.PutAsync("k", new MemoryStream([1, 2, 3]), 2));

        var read = new MemoryStream();
        await _store.CopyToAsync("k", read);
        Assert.Equal([9, 9], read.ToArray());
        Assert.Single(Directory.GetFiles(_root));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("a/../../outside")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("a\\..\\b")]
    public async Task Keys_that_could_leave_the_root_are_refused(string key)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _store.PutAsync(key, new MemoryStream([1]), 1));
        Assert.Throws<ArgumentException>(() => _store.PathOf(key));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
