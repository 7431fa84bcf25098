using System.Text.Json.Nodes;

namespace EphemeralCI.IntegrationTests.Fakes.FakeKubernetes;

/// <summary>The equality-based label selectors the API server accepts (<c>a=b,c!=d,e,!f</c>); set-based ones are refused.</summary>
public sealed class LabelSelector
{
    private readonly List<Func<IReadOnlyDictionary<string, string>, bool>> _terms = [];

    public static LabelSelector Parse(string? selector)
    {
        var result = new LabelSelector();
        foreach (var raw in (selector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (raw.Contains(" in ", StringComparison.Ordinal) || raw.Contains('(')) throw new FormatException($"set-based selector '{raw}' is not supported by the fake");
            if (raw.Split("!=", 2) is [var k1, var v1]) result._terms.Add(l => !l.TryGetValue(k1, out var x) || x != v1);
            else if (raw.Split("==", 2) is [var k2, var v2]) result._terms.Add(l => l.TryGetValue(k2, out var x) && x == v2);
            else if (raw.Split('=', 2) is [var k3, var v3]) result._terms.Add(l => l.TryGetValue(k3, out var x) && x == v3);
            else if (raw.StartsWith('!')) result._terms.Add(l => !l.ContainsKey(raw[1..]));
            else result._terms.Add(l => l.ContainsKey(raw));
        }
        return result;
    }

    public bool Matches(JsonObject obj)
    {
        var labels = (obj["metadata"]?["labels"] as JsonObject)?.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>() ?? "")
            ?? new Dictionary<string, string>();
        return _terms.All(t => t(labels));
    }
}
