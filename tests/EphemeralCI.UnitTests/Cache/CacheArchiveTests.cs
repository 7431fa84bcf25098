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

    /// <summary>
    /// Issue 14 item 8: each member passes the lexical check (<c>a/b -> ../outside</c> reads as <c>{ws}/outside</c>), but
    /// with <c>a -> .</c> the link sits at <c>{ws}/b</c> and points next to the workspace; <c>a/b/x</c> would land there.
    /// </summary>
    [Fact]
    public async Task A_chain_of_links_in_the_archive_is_refused_before_anything_is_written()
    {
        var outside = Path.GetFileName(_outside);
        await WriteArchiveAsync(("innocent.txt", TarEntryType.RegularFile, null), ("a", TarEntryType.SymbolicLink, "."),
            ("a/b", TarEntryType.SymbolicLink, $"../{outside}"), ("a/b/x", TarEntryType.RegularFile, null));

        var e = await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None));

        Assert.Contains("a/b", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_target));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    [Fact]
    public async Task Links_already_in_the_workspace_are_resolved_for_real_before_each_write()
    {
        // Left by an earlier cache or the checkout; the archive itself looks harmless.
        File.CreateSymbolicLink(Path.Combine(_target, "a"), ".");
        File.CreateSymbolicLink(Path.Combine(_target, "b"), _outside);
        await WriteArchiveAsync(("a/b/x", TarEntryType.RegularFile, null));

        var e = await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None));

        Assert.Contains("out of the workspace", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_link_whose_target_climbs_out_through_another_link_is_refused(bool linkAlreadyInWorkspace)
    {
        // Lexically 'a/../{outside}' is '{ws}/{outside}'; the kernel resolves 'a' first ('.', the workspace) and climbs from there.
        var outside = Path.GetFileName(_outside);
        if (linkAlreadyInWorkspace) File.CreateSymbolicLink(Path.Combine(_target, "a"), ".");
        (string, TarEntryType, string?)[] members = [("esc", TarEntryType.SymbolicLink, $"a/../{outside}"), ("esc/x", TarEntryType.RegularFile, null)];
        await WriteArchiveAsync(linkAlreadyInWorkspace ? members : [("a", TarEntryType.SymbolicLink, "."), .. members]);

        var e = await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None));

        Assert.Contains("esc", e.Message);
        Assert.False(new FileInfo(Path.Combine(_target, "esc")).LinkTarget is not null, "the escaping link must not be created");
        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    [Fact]
    public async Task A_cache_path_that_is_a_link_out_of_the_workspace_is_not_followed_on_save()
    {
        await File.WriteAllTextAsync(Path.Combine(_outside, "secret.txt"), "host secret");
        File.CreateSymbolicLink(Path.Combine(_source, "deps"), _outside);
        File.CreateSymbolicLink(Path.Combine(_source, "up"), "..");

        foreach (var path in new[] { "deps", "deps/secret.txt", $"up/{Path.GetFileName(_outside)}" })
        {
            await using var file = File.Create(_archive);
            var e = await Assert.ThrowsAsync<CacheArchiveException>(() => CacheArchive.CreateAsync(_source, [path], file, CancellationToken.None));
            Assert.Contains(path.Split('/')[0], e.Message);
        }
    }

    [Fact]
    public async Task A_cache_path_that_is_a_link_inside_the_workspace_is_kept_as_a_link()
    {
        Directory.CreateDirectory(Path.Combine(_source, "real"));
        await File.WriteAllTextAsync(Path.Combine(_source, "real", "f"), "x");
        File.CreateSymbolicLink(Path.Combine(_source, "deps"), "real");

        await using (var file = File.Create(_archive))
        {
            Assert.Equal(1, await CacheArchive.CreateAsync(_source, ["deps"], file, CancellationToken.None));
        }
        await CacheArchive.ExtractAsync(_archive, _target, CancellationToken.None);

        Assert.Equal("real", new FileInfo(Path.Combine(_target, "deps")).LinkTarget);
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
