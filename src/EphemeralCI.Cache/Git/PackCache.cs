using System.Text;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Git;

/// <summary>
/// Packs served to runners, kept for the next runner that asks for the same thing — the way GitHub's pack-objects
/// cache works. upload-pack runs <see cref="HookPath"/> instead of <c>git pack-objects</c>
/// (<c>uploadpack.packObjectsHook</c>, given as command-line-level config, which git requires of that setting); the
/// hook keys the pack by the mirror, pack-objects' arguments and the exact want/have/shallow input upload-pack sends
/// it, so a pack is only ever reused as the answer to the very request that made it (objects never change; a fetch
/// that moves a ref changes the wants, hence the key). Every job of a commit after the first streams a stored pack
/// instead of compressing the tree again. Held to <c>Checkout:PackCacheBytes</c> by the mirror maintenance.
/// </summary>
public sealed class PackCache
{
    public const string FolderName = ".pack-cache";
    public const string DirectoryVariable = "ECI_PACK_CACHE";

    // Input to a temporary file (it is read twice: for the key, then by pack-objects); the pack to a temporary file
    // renamed into place only when pack-objects succeeded, so a failed or cut-short pack is never served.
    private const string Hook = """
        #!/bin/sh
        # EphemeralCI pack cache: upload-pack runs this with "git pack-objects ..." as its arguments.
        set -u
        dir="${ECI_PACK_CACHE:?}"
        input=$(mktemp "$dir/.in.XXXXXXXX") || exec "$@"
        trap 'rm -f "$input" "$input.pack"' EXIT HUP INT TERM
        cat > "$input"
        key=$({ pwd; printf '%s\n' "$@"; cat "$input"; } | sha256sum | cut -c1-64)
        if [ -f "$dir/$key.pack" ] && touch "$dir/$key.pack" 2>/dev/null && cat "$dir/$key.pack"; then exit 0; fi
        "$@" < "$input" > "$input.pack" || exit $?
        mv -f "$input.pack" "$dir/$key.pack"
        exec cat "$dir/$key.pack"
        """;

    private readonly CheckoutOptions _options;
    private readonly TimeProvider _clock;

    public PackCache(GitMirrors mirrors, IOptions<CheckoutOptions> options, TimeProvider clock)
    {
        _options = options.Value;
        _clock = clock;
        Directory = Path.Combine(mirrors.Root, FolderName);
    }

    /// <summary>Where packs are kept (inside the mirror root; no owner name starts with a dot).</summary>
    public string Directory { get; }

    public string HookPath => Path.Combine(Directory, "pack-objects-hook");

    public bool Enabled => _options.PackCacheBytes > 0;

    /// <summary>The config and environment one upload-pack needs to use the cache; none when it is off.</summary>
    public IEnumerable<KeyValuePair<string, string>> GitConfig()
    {
        if (!Enabled) yield break;
        EnsureHook();
        yield return new("uploadpack.packObjectsHook", HookPath);
    }

    private void EnsureHook()
    {
        if (File.Exists(HookPath)) return;
        System.IO.Directory.CreateDirectory(Directory);
        var temp = HookPath + "." + Guid.NewGuid().ToString("N");
        File.WriteAllText(temp, Hook.Replace("\r\n", "\n") + "\n", new UTF8Encoding(false));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.Move(temp, HookPath, overwrite: true);
    }

    /// <summary>Deletes the least recently served packs (and stale temporaries) until the rest fit the budget. Returns the bytes freed.</summary>
    public long Trim()
    {
        if (!System.IO.Directory.Exists(Directory)) return 0;
        var stale = _clock.GetUtcNow().UtcDateTime.AddHours(-6);
        var files = new DirectoryInfo(Directory).EnumerateFiles("*", SearchOption.TopDirectoryOnly).ToList();
        long freed = 0;
        foreach (var temp in files.Where(f => f.Name.StartsWith(".in.", StringComparison.Ordinal) && f.LastWriteTimeUtc < stale))
        {
            freed += temp.Length;
            temp.Delete();
        }
        var packs = files.Where(f => f.Extension == ".pack" && !f.Name.StartsWith('.')).OrderBy(f => f.LastWriteTimeUtc).ToList();
        var total = packs.Sum(f => f.Length);
        foreach (var pack in packs)
        {
            if (total <= _options.PackCacheBytes) break;
            total -= pack.Length;
            freed += pack.Length;
            try { pack.Delete(); } catch (IOException) { }
        }
        return freed;
    }
}
