using System.Security.Cryptography;
using EphemeralCI.Cache.Storage;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

public sealed class OverlappedCopyTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(4097)]
    [InlineData(3 * 4096 + 17)]
    public async Task Copies_every_byte_in_order_whatever_sizes_the_source_returns(int length)
    {
        var bytes = RandomNumberGenerator.GetBytes(length);
        var destination = new MemoryStream();

        await OverlappedCopy.CopyAsync(new TricklingStream(bytes), destination, 4096, CancellationToken.None);

        Assert.Equal(bytes, destination.ToArray());
    }

    [Fact]
    public async Task A_write_in_flight_when_the_source_fails_ends_before_the_copy_throws()
    {
        var destination = new SlowDestination();
        var source = new TricklingStream(RandomNumberGenerator.GetBytes(3 * 4096), failAfter: 4096);

        await Assert.ThrowsAsync<IOException>(() => OverlappedCopy.CopyAsync(source, destination, 4096, CancellationToken.None));

        Assert.Equal(0, destination.InFlight);
        Assert.Equal(4096, destination.Written);
    }

    /// <summary>Returns at most 1000 bytes a read, asynchronously; optionally fails once <paramref name="failAfter"/> bytes went out.</summary>
    private sealed class TricklingStream(byte[] bytes, int failAfter = int.MaxValue) : Stream
    {
        private int _position;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            if (_position >= failAfter) throw new IOException("the source broke");
            var count = Math.Min(Math.Min(buffer.Length, 1000), bytes.Length - _position);
            bytes.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class SlowDestination : Stream
    {
        public int InFlight;
        public int Written;

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref InFlight);
            await Task.Delay(200, cancellationToken);
            Written += buffer.Length;
            Interlocked.Decrement(ref InFlight);
        }

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
