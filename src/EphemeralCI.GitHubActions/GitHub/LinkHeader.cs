namespace EphemeralCI.GitHubActions.GitHub;

/// <summary>
/// RFC 8288 <c>Link</c> header, as far as GitHub's pagination needs it: the target of <c>rel="next"</c>.
/// No NuGet package served here parses it; GitHub's form is <c>&lt;url&gt;; rel="next", &lt;url&gt;; rel="last"</c>.
/// </summary>
public static class LinkHeader
{
    /// <summary>The <c>rel="next"</c> target of the given <c>Link</c> header values; null when there is none or it is malformed.</summary>
    public static Uri? Next(IEnumerable<string> values, Uri requestUri)
    {
        foreach (var value in values)
        {
            var rest = value.AsSpan();
            while (!rest.IsEmpty)
            {
                rest = rest.TrimStart(" ,\t");
                if (rest.IsEmpty || rest[0] != '<') return null;
                var close = rest.IndexOf('>');
                if (close < 0) return null;
                var target = rest[1..close].ToString();
                rest = rest[(close + 1)..];
                // Parameters run to the next comma that starts another link (GitHub's values never hold commas).
                var end = rest.IndexOf(',');
                var parameters = end < 0 ? rest : rest[..end];
                rest = end < 0 ? [] : rest[end..];
                foreach (var parameter in parameters.ToString().Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = parameter.IndexOf('=');
                    if (eq < 0 || !parameter[..eq].Trim().Equals("rel", StringComparison.OrdinalIgnoreCase)) continue;
                    var rels = parameter[(eq + 1)..].Trim().Trim('"').Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (rels.Contains("next", StringComparer.OrdinalIgnoreCase))
                        return Uri.TryCreate(requestUri, target, out var next) ? next : null;
                }
            }
        }
        return null;
    }
}
