using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EphemeralCI.DeployTests.Rendering;
using Xunit;

namespace EphemeralCI.DeployTests.Images;

/// <summary>What eng/images.sh builds, read from the script itself so the tests and it cannot drift.</summary>
public static partial class ImageRecipe
{
    public static string Script => Path.Combine(Repository.Root, "eng", "images.sh");

    public static string Version { get; } = Environment.GetEnvironmentVariable("ECI_IMAGE_VERSION") is { Length: > 0 } v
        ? v : DefaultVersion().Match(File.ReadAllText(Script)).Groups[1].Value;

    public static readonly string[] Services = ["intake", "secrets-broker", "cache", "provisioner", "github-actions"];
    public static readonly string[] Runners = ["runner-shell", "runner-dotnet", "runner-node"];

    /// <summary>Every image, in eng/images.sh's order (its ALL list; a test keeps the two equal).</summary>
    public static readonly string[] All = [.. Services, "server", .. Runners];

    /// <summary>Where the runner images carry the natively compiled agent (Provisioner:Kubernetes:AgentAssemblyPath).</summary>
    public const string NativeAgentPath = "/opt/eci/agent/EphemeralCI.RunnerAgent";

    public static string OutputDirectory => Environment.GetEnvironmentVariable("ECI_IMAGES_OUT") is { Length: > 0 } o
        ? o : Path.Combine(Repository.Root, "artifacts", "images");

    public static string ArchivePath(string image) => Path.Combine(OutputDirectory, $"{image}-{Version}.oci.tar");

    [GeneratedRegex("""VERSION="\$\{ECI_IMAGE_VERSION:-([^}]+)\}""")]
    private static partial Regex DefaultVersion();
}

/// <summary>
/// An oci-archive (a tar of an OCI image layout) as eng/images.sh writes it: its one tag, the
/// manifest, the config, and the layers (gzip tars) with their compressed sizes and entries.
/// </summary>
public sealed class ImageArchive
{
    private readonly Dictionary<string, byte[]> _blobs = [];

    public ImageArchive(string path)
    {
        Path = path;
        using (var file = File.OpenRead(path))
        using (var tar = new TarReader(file))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.DataStream is null) continue;
                using var copy = new MemoryStream();
                entry.DataStream.CopyTo(copy);
                _blobs[entry.Name.TrimStart('.', '/')] = copy.ToArray();
            }
        }
        Index = Json("index.json");
        var manifests = Index["manifests"]!.AsArray();
        Tags = [.. manifests.Select(m => m!["annotations"]?["org.opencontainers.image.ref.name"]?.ToString() ?? "")];
        Manifest = Blob(Assert.Single(manifests)!["digest"]!.ToString());
        Config = Blob(Manifest["config"]!["digest"]!.ToString());
        Layers = [.. Manifest["layers"]!.AsArray().Select(l => new Layer(l!["mediaType"]!.ToString(), l["digest"]!.ToString(), l["size"]!.GetValue<long>()))];
    }

    public string Path { get; }
    public JsonObject Index { get; }
    public JsonObject Manifest { get; }
    public JsonObject Config { get; }
    public IReadOnlyList<string> Tags { get; }
    public IReadOnlyList<Layer> Layers { get; }

    public sealed record Layer(string MediaType, string Digest, long Size);

    public string? User => Config["config"]?["User"]?.ToString();
    public string[] Entrypoint => Strings(Config["config"]?["Entrypoint"]);
    public string[] Cmd => Strings(Config["config"]?["Cmd"]);
    public IReadOnlyDictionary<string, string> Env => Strings(Config["config"]?["Env"]).Select(e => e.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    public IReadOnlyDictionary<string, string> Labels => (Config["config"]?["Labels"]?.AsObject() ?? []).ToDictionary(kv => kv.Key, kv => kv.Value!.ToString());
    public IReadOnlyDictionary<string, string> Annotations => (Manifest["annotations"]?.AsObject() ?? []).ToDictionary(kv => kv.Key, kv => kv.Value!.ToString());
    public long CompressedSize => Layers.Sum(l => l.Size) + _blobs[BlobPath(Manifest["config"]!["digest"]!.ToString())].Length;

    /// <summary>Every path of the image's file system (the layers merged; none of ours whites anything out) with its entry.</summary>
    public IReadOnlyDictionary<string, (TarEntryType Type, UnixFileMode Mode, int Uid, string LinkName)> Files()
    {
        var files = new Dictionary<string, (TarEntryType, UnixFileMode, int, string)>();
        foreach (var layer in Layers)
        {
            Assert.Equal("application/vnd.oci.image.layer.v1.tar+gzip", layer.MediaType);
            using var gzip = new GZipStream(new MemoryStream(_blobs[BlobPath(layer.Digest)]), CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (NextEntry(tar) is { } entry)
            {
                var name = "/" + entry.Name.TrimStart('.', '/').TrimEnd('/');
                Assert.DoesNotContain("/.wh.", name, StringComparison.Ordinal);
                files[name] = (entry.EntryType, entry.Mode, entry.Uid, entry.LinkName);
            }
        }
        return files;
    }

    /// <summary>Unpacks the root file system with the system tar (as root it keeps the files' owners, as a runtime would).</summary>
    public void Unpack(string directory)
    {
        foreach (var layer in Layers)
        {
            var start = new ProcessStartInfo("tar", ["-xzf", "-", "-C", directory, "--numeric-owner"]) { RedirectStandardInput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            process.StandardInput.BaseStream.Write(_blobs[BlobPath(layer.Digest)]);
            process.StandardInput.Close();
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"unpacking {layer.Digest}: {error}");
        }
    }

    /// <summary>umoci's layers end without tar's two zero blocks, which GNU tar and runtimes accept; so do we.</summary>
    private static TarEntry? NextEntry(TarReader tar)
    {
        try
        {
            return tar.GetNextEntry();
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }

    private JsonObject Json(string name) => (JsonObject)JsonNode.Parse(_blobs[name])!;

    private JsonObject Blob(string digest) => Json(BlobPath(digest));

    private static string BlobPath(string digest) => "blobs/" + digest.Replace(':', '/');

    private static string[] Strings(JsonNode? node) => node is JsonArray a ? [.. a.Select(x => x!.ToString())] : [];
}

/// <summary>
/// The archives the tests inspect: those eng/images.sh already wrote (a developer's `eng/images.sh`),
/// plus the ones CI builds here when missing — only the server image by default, to keep .ci/run
/// within its time budget. On demand: ECI_TEST_IMAGES="server intake …" builds those, ECI_TEST_IMAGES=all
/// every image (the four services, the server, the three runners; minutes each),
/// ECI_TEST_IMAGES=none only inspects archives already there.
/// </summary>
public static class ImageBuild
{
    private static readonly SemaphoreSlim Gate = new(1, 1);

    public static IEnumerable<string> BuiltOrToBuild()
    {
        var toBuild = (Environment.GetEnvironmentVariable("ECI_TEST_IMAGES") ?? "server").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return ImageRecipe.All.Where(i => toBuild.Contains("all") || toBuild.Contains(i) || File.Exists(ImageRecipe.ArchivePath(i)));
    }

    public static ImageArchive Open(string image)
    {
        var path = ImageRecipe.ArchivePath(image);
        Gate.Wait();
        try
        {
            if (!File.Exists(path))
            {
                var start = new ProcessStartInfo(ImageRecipe.Script, [image]) { RedirectStandardOutput = true, RedirectStandardError = true };
                using var process = Process.Start(start)!;
                var stdout = process.StandardOutput.ReadToEndAsync();
                var stderr = process.StandardError.ReadToEndAsync();
                if (!process.WaitForExit(TimeSpan.FromMinutes(25)))
                {
                    process.Kill(entireProcessTree: true);
                    Assert.Fail($"eng/images.sh {image} did not finish in 25 minutes: {stderr.Result}");
                }
                Assert.True(process.ExitCode == 0, $"eng/images.sh {image} failed ({process.ExitCode}): {stdout.Result}{stderr.Result}");
            }
        }
        finally
        {
            Gate.Release();
        }
        return new ImageArchive(path);
    }
}
