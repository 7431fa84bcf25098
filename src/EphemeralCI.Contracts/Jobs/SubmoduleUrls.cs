namespace EphemeralCI.Contracts.Jobs;

/// <summary>One submodule of a <c>.gitmodules</c>: its name, URL and path (either may be missing in a broken file).</summary>
public sealed record GitModule(string Name, string? Url, string? Path);

/// <summary>
/// Which repository (owner/name) a submodule URL in <c>.gitmodules</c> names: the rule the cache uses to allow a job
/// its submodules' mirrors and the runner agent uses to fetch them, so both agree.
/// </summary>
public static class SubmoduleUrls
{
    /// <summary>The arguments that make git print a <c>.gitmodules</c>' URLs and paths for <see cref="Parse"/>.</summary>
    public static readonly string[] ConfigQuery = ["--get-regexp", @"^submodule\..*\.(url|path)$"];

    /// <summary>The submodules in the output of <c>git config … <see cref="ConfigQuery"/></c> (<c>submodule.NAME.url VALUE</c> lines), in file order.</summary>
    public static IReadOnlyList<GitModule> Parse(string configOutput)
    {
        var modules = new Dictionary<string, GitModule>(StringComparer.Ordinal);
        foreach (var line in configOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.IndexOf(' ');
            var dot = space < 0 ? -1 : line.LastIndexOf('.', space);
            if (dot <= "submodule.".Length) continue;
            var name = line["submodule.".Length..dot];
            var value = line[(space + 1)..].Trim();
            var module = modules.GetValueOrDefault(name) ?? new GitModule(name, null, null);
            modules[name] = line[(dot + 1)..space] == "url" ? module with { Url = value } : module with { Path = value };
        }
        return [.. modules.Values];
    }

    /// <summary>
    /// owner/name of <paramref name="url"/>: an absolute forge URL (<c>https://host/owner/name(.git)</c>,
    /// <c>git@host:owner/name.git</c>, <c>ssh://</c>, <c>git://</c>) by its last two path segments, or a URL relative to
    /// the superproject (<c>../name.git</c>, <c>../../owner/name.git</c>, as GitHub and GitLab resolve them against
    /// <paramref name="superproject"/>, itself owner/name). Null for anything else (a local path, a relative URL that
    /// leaves the forge).
    /// </summary>
    public static string? RepositoryOf(string url, string? superproject = null)
    {
        url = url.Trim();
        string path;
        if (url.StartsWith("./", StringComparison.Ordinal) || url.StartsWith("../", StringComparison.Ordinal))
        {
            if (superproject is null || superproject.Split('/') is not [_, _] parts) return null;
            // Relative to the superproject's URL: https://host/owner/name.git + ../lib.git = https://host/owner/lib.git.
            var segments = new List<string>(parts);
            foreach (var segment in url.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (segment == ".") continue;
                if (segment == "..")
                {
                    if (segments.Count == 0) return null;
                    segments.RemoveAt(segments.Count - 1);
                }
                else segments.Add(segment);
            }
            path = string.Join('/', segments);
            if (segments.Count != 2) return null;
        }
        else if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "https" or "http" or "ssh" or "git") path = uri.AbsolutePath;
        else if (url.Contains('@') && url.Contains(':') && !url.Contains("://")) path = url[(url.IndexOf(':') + 1)..];
        else return null;
        var names = path.Trim('/').Split('/');
        if (names.Length < 2) return null;
        var name = names[^1].EndsWith(".git", StringComparison.Ordinal) ? names[^1][..^4] : names[^1];
        return names[^2].Length == 0 || name.Length == 0 ? null : $"{names[^2]}/{name}";
    }
}
