using System.Text;
using EphemeralCI.RunnerAgent;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class LogStreamerTests
{
    [Theory]
    [InlineData("abc", 3)]
    [InlineData("aé", 3)]
    [InlineData("a€", 4)]
    [InlineData("a😀", 5)]
    public void Complete_text_is_kept_whole(string text, int expected) =>
        Assert.Equal(expected, Utf8Boundary.CompletePrefixLength(Encoding.UTF8.GetBytes(text)));

    [Theory]
    [InlineData("a€", 1)] // cut after the lead byte
    [InlineData("a€", 2)] // cut inside
    [InlineData("a😀", 1)]
    [InlineData("a😀", 3)]
    public void A_cut_character_is_held_back(string text, int drop)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Equal(1, Utf8Boundary.CompletePrefixLength(bytes.AsSpan(0, bytes.Length - drop)));
    }

    [Fact]
    public async Task Chunks_are_contiguous_by_offset_at_most_64KiB_and_valid_UTF8_each()
    {
        var chunks = new List<(long Offset, byte[] Bytes)>();
        var text = string.Concat(Enumerable.Repeat("line é € 😀 ", 20_000));
        await using (var log = new LogStreamer((offset, bytes, _) =>
                     {
                         lock (chunks) chunks.Add((offset, bytes.ToArray()));
                         return Task.CompletedTask;
                     }))
        {
            var all = Encoding.UTF8.GetBytes(text);
            // Odd write sizes so writes end inside characters.
            for (var i = 0; i < all.Length; i += 1001) await log.WriteAsync(all.AsMemory(i, Math.Min(1001, all.Length - i)), default);
            await log.FlushAsync(default);
            Assert.Equal(all.Length, log.Offset);
        }

        long expected = 0;
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        foreach (var (offset, bytes) in chunks)
        {
            Assert.Equal(expected, offset);
            Assert.InRange(bytes.Length, 1, LogStreamer.MaxChunkBytes);
            strict.GetString(bytes); // throws on a split character
            expected += bytes.Length;
        }
        Assert.Equal(text, string.Concat(chunks.Select(c => Encoding.UTF8.GetString(c.Bytes))));
    }

    [Fact]
    public async Task A_failed_post_is_retried_from_the_same_offset()
    {
        var attempts = new System.Collections.Concurrent.ConcurrentQueue<long>();
        var fail = true;
        await using var log = new LogStreamer((offset, _, _) =>
        {
            attempts.Enqueue(offset);
            if (fail) { fail = false; throw new HttpRequestException("intake restarting"); }
            return Task.CompletedTask;
        });
        await log.WriteLineAsync("hello", default);
        // The first post fails (from this flush or the background timer, whichever runs first).
        for (var i = 0; i < 3 && log.Offset == 0; i++)
        {
            try { await log.FlushAsync(default); } catch (HttpRequestException) { }
        }
        Assert.Equal(6, log.Offset);
        Assert.Equal([0L, 0L], attempts);
    }
}
