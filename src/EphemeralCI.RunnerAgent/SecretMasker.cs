using System.Net;
using System.Text;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// Replaces every secret value the agent received — and its base64 and URL-encoded forms — with
/// <c>***</c> in a byte stream that arrives in arbitrary chunks. A match may be split across chunks,
/// so the masker holds back a tail that could still be the start of a secret (at most the longest
/// form minus one byte) until the next chunk or <see cref="Flush"/> decides it. At each position the
/// longest form wins, so a value that extends another is masked whole.
/// Not thread-safe: one instance per output stream.
/// </summary>
public sealed class SecretMasker
{
    public const string Mask = "***";
    /// <summary>Shorter values are not masked: masking "1" or "ok" would shred every log and hide nothing.</summary>
    public const int MinimumLength = 3;

    private static readonly byte[] MaskBytes = Encoding.UTF8.GetBytes(Mask);
    private readonly byte[][] _patterns;
    private byte[] _pending = [];

    public SecretMasker(IEnumerable<string> secretValues)
    {
        var forms = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in secretValues)
        {
            if (string.IsNullOrEmpty(value) || value.Length < MinimumLength) continue;
            foreach (var form in FormsOf(value)) forms.Add(form);
            // A multi-line value (a key file) is often printed line by line: mask each substantial line too.
            foreach (var line in value.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (line.Length >= 8) foreach (var form in FormsOf(line)) forms.Add(form);
            }
        }
        _patterns = [.. forms.Where(f => f.Length >= MinimumLength).Select(Encoding.UTF8.GetBytes).OrderByDescending(p => p.Length)];
        MaxPatternLength = _patterns.Length == 0 ? 0 : _patterns[0].Length;
    }

    public int MaxPatternLength { get; }

    public bool IsEmpty => _patterns.Length == 0;

    /// <summary>The value, its standard and URL-safe base64 (without padding, so it also matches inside longer base64), and its URL encodings.</summary>
    public static IEnumerable<string> FormsOf(string value)
    {
        yield return value;
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(value)).TrimEnd('=');
        yield return base64;
        yield return base64.Replace('+', '-').Replace('/', '_');
        yield return Uri.EscapeDataString(value);
        yield return WebUtility.UrlEncode(value); // form encoding: space as '+'
    }

    /// <summary>Masks what can be decided now and returns it; keeps the undecided tail for the next call.</summary>
    public byte[] Process(ReadOnlySpan<byte> chunk)
    {
        if (IsEmpty) return chunk.ToArray();
        var buffer = new byte[_pending.Length + chunk.Length];
        _pending.CopyTo(buffer, 0);
        chunk.CopyTo(buffer.AsSpan(_pending.Length));
        return Scan(buffer, final: false);
    }

    /// <summary>No more data is coming (the step ended): masks and returns everything held back.</summary>
    public byte[] Flush()
    {
        var buffer = _pending;
        _pending = [];
        return IsEmpty ? buffer : Scan(buffer, final: true);
    }

    /// <summary>Convenience for whole strings (the agent's own messages).</summary>
    public string MaskText(string text)
    {
        var masker = new SecretMasker(this);
        var head = masker.Process(Encoding.UTF8.GetBytes(text));
        return Encoding.UTF8.GetString([.. head, .. masker.Flush()]);
    }

    private SecretMasker(SecretMasker patternsOf)
    {
        _patterns = patternsOf._patterns;
        MaxPatternLength = patternsOf.MaxPatternLength;
    }

    private byte[] Scan(byte[] buffer, bool final)
    {
        var output = new List<byte>(buffer.Length);
        var i = 0;
        while (i < buffer.Length)
        {
            var rest = buffer.AsSpan(i);
            if (!final && IsPartialMatch(rest))
            {
                break; // might be the start of a secret whose end has not arrived yet
            }
            var match = LongestMatch(rest);
            if (match is not null)
            {
                output.AddRange(MaskBytes);
                i += match.Length;
            }
            else
            {
                output.Add(buffer[i]);
                i++;
            }
        }
        _pending = buffer[i..];
        return [.. output];
    }

    private bool IsPartialMatch(ReadOnlySpan<byte> rest)
    {
        foreach (var p in _patterns)
        {
            if (p.Length > rest.Length && p.AsSpan().StartsWith(rest)) return true;
        }
        return false;
    }

    private byte[]? LongestMatch(ReadOnlySpan<byte> rest)
    {
        foreach (var p in _patterns) // longest first
        {
            if (rest.StartsWith(p)) return p;
        }
        return null;
    }
}
