using Xunit;
using System.Security.Cryptography;
using EphemeralCI.Cache.BuildCache;

namespace EphemeralCI.UnitTests.Cache;

public sealed class UploadSpoolTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eci-spool-test-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Hashes_and_keeps_the_content_then_deletes_the_file()
    {
        var content = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        string path;
        await using (var spool = await UploadSpool.CreateAsync(new MemoryStream(content), _dir, content.Length, default))
        {
            Assert.NotNull(spool);
            Assert.Equal(content.Length, spool.Length);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), spool.Sha256);
            var copy = new MemoryStream();
            await spool.OpenContent().CopyToAsync(copy);
            Assert.Equal(content, copy.ToArray());
            path = spool.SpoolPath;
            Assert.True(File.Exists(path));
        }
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task Empty_body_has_the_empty_digest()
    {
        await using var spool = await UploadSpool.CreateAsync(new MemoryStream(), _dir, 10, default);

        Assert.NotNull(spool);
        Assert.Equal(0, spool.Length);
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", spool.Sha256);
    }

    [Fact]
    public async Task Stops_at_the_limit_and_leaves_no_file()
    {
        var spool = await UploadSpool.CreateAsync(new MemoryStream(new byte[1001]), _dir, 1000, default);

        Assert.Null(spool);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task Exactly_the_limit_is_accepted()
    {
        await using var spool = await UploadSpool.CreateAsync(new MemoryStream(new byte[1000]), _dir, 1000, default);

        Assert.NotNull(spool);
    }

    [Fact]
    public async Task A_failing_source_leaves_no_file()
    {
        await Assert.ThrowsAsync<IOException>(() => UploadSpool.CreateAsync(new FailingStream(), _dir, 1 << 20, default));

        Assert.Empty(Directory.GetFiles(_dir));
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Gives some bytes, then fails like a dropped connection.</summary>
    private sealed class FailingStream : Stream
    {
        private int _reads;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) =>
            _reads++ == 0 ? Math.Min(count, 100) : throw new IOException("connection reset");
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
