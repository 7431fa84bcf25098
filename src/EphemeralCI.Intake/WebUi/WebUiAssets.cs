using System.Collections.Frozen;

namespace EphemeralCI.Intake.WebUi;

/// <summary>The UI's stylesheet and script, embedded in the module (no static web assets, no Node build).</summary>
internal static class WebUiAssets
{
    public sealed record Asset(byte[] Content, string ContentType);

    private static readonly FrozenDictionary<string, Asset> All = Load();

    public static Asset? Find(string name) => All.GetValueOrDefault(name);

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(WebUiAssets).Assembly;
        const string prefix = "EphemeralCI.Intake.WebUi.Assets.";
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var name = resource[prefix.Length..];
            var type = name.EndsWith(".css", StringComparison.Ordinal) ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
            assets[name] = new Asset(copy.ToArray(), type);
        }
        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
