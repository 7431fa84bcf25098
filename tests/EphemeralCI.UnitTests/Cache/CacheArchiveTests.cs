using System.Formats.Tar;
using EphemeralCI.RunnerAgent.Caching;
using Xunit;
using ZstdSharp;

namespace EphemeralCI.UnitTests.Cache;

/// <summary>The runner agent's cache archives: tar+zstd round trip, and members that try to leave the workspace.</summary>
public sealed class CacheArchiveTests : IDisposable
{
    private readonly string _source = Directory.CreateTempSubdirectory("eci-ut-src-").FullName;
    private readonly string _target = Directory.CreateTempSubdirectory("eci-ut-dst-").FullName;
    private readonly string _outside = Directory.CreateTempSubdirectory("eci-ut-outside-").FullName;
    private readonly string _archive = Path.Combine(Path.GetTempPath(), $"eci-ut-{Guid.NewGuid():N}.tzst");

    [Fact]
    public async Task Files_directories_and_inner_links_round_trip()
    {
        Directory.CreateDirectory(Path.Combine(_source, "node_modules", "pkg"));
        await File.WriteAllTextAsync(Path.Combine(_source, "node_modules", "pkg", "index.js"), "module.exports = 1;");
        File.CreateSymbolicLink(Path.Combine(_source, "node_modules", ".bin"), "pkg");
        await File.WriteAllBytesAsync(Path.Combine(_source, "lock.bin"), [1, 2, 3]);

        await using (var file = File.Create(_archive))
        {
            Assert.Equal(5, await CacheArchive.CreateAsync(_source, ["node_modules", "lock.bin", "missing"], file, CancellationToken.None));
        }
        var extracted = await CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None);

        Assert.Equal(5, extracted);
        Assert.Equal("module.exports = 1;", await File.ReadAllTextAsync(Path.Combine(_target, "node_modules", "pkg", "index.js")));
        Assert.Equal("pkg", new FileInfo(Path.Combine(_target, "node_modules", ".bin")).LinkTarget);
        Assert.Equal([1, 2, 3], await File.ReadAllBytesAsync(Path.Combine(_target, "lock.bin")));
    }

    [Fact]
    public async Task Cache_paths_outside_the_workspace_are_refused()
    {
        await using var file = File.Create(_archive);

        await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.CreateAsync(_source, ["../etc"], file, CancellationToken.None));
    }

    public static TheoryData<string, TarEntryType, string?> Escapes() => new()
    {
        { "../evil.txt", TarEntryType.RegularFile, null },
        { "a/../../evil.txt", TarEntryType.RegularFile, null },
        { "/tmp/evil.txt", TarEntryType.RegularFile, null },
        { "link", TarEntryType.SymbolicLink, "/etc" },
        { "link", TarEntryType.SymbolicLink, "../../.." },
        { "hard", TarEntryType.HardLink, "/etc/passwd" },
        { "dev", TarEntryType.CharacterDevice, null },
        { "fifo", TarEntryType.Fifo, null },
    };

    [Theory]
    [MemberData(nameof(Escapes))]
    public async Task Members_escaping_the_workspace_fail_the_restore_before_anything_is_written(string name, TarEntryType type, string? link)
    {
        await WriteArchiveAsync(("innocent.txt", TarEntryType.RegularFile, null), (name, type, link));

        var e = await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None));

        Assert.Contains(name, e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_target));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    private async Task WriteArchiveAsync(params (string Name, TarEntryType Type, string? Link)[] members)
    {
        await using var file = File.Create(_archive);
        await using var zstd = new CompressionStream(file);
        await using var tar = new TarWriter(zstd, TarEntryFormat.Pax);
        foreach (var (name, type, link) in members)
        {
            var entry = new PaxTarEntry(type, name);
            if (link is not null) entry.LinkName = link;
            if (type == TarEntryType.RegularFile) entry.DataStream = new MemoryStream("x"u8.ToArray());
            await tar.WriteEntryAsync(entry);
        }
    }

    public void Dispose()
    {
        foreach (var dir in new[] { _source, _target, _outside }) Directory.Delete(dir, recursive: true);
        File.Delete(_archive);
    }
}
