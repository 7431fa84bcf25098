using System.Globalization;
using System.Text.RegularExpressions;

namespace EphemeralCI.Cli.JobFiles;

/// <summary>Job timeouts as people write them: "90s", "10m", "1h30m", "2h", or a bare number of seconds.</summary>
public static partial class Durations
{
    [GeneratedRegex(@"^(?:(?<h>\d+)h)?(?:(?<m>\d+)m)?(?:(?<s>\d+)s)?$")]
    private static partial Regex Pattern();

    public static bool TryParseSeconds(string text, out int seconds)
    {
        seconds = 0;
        text = text.Trim();
        if (text.Length == 0) return false;
        if (text.All(char.IsAsciiDigit)) return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out seconds);
        var match = Pattern().Match(text);
        if (!match.Success) return false;
        long total = 0;
        foreach (var (group, factor) in new[] { ("h", 3600L), ("m", 60L), ("s", 1L) })
        {
            if (!match.Groups[group].Success) continue;
            if (!long.TryParse(match.Groups[group].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > int.MaxValue) return false;
            total += n * factor;
            if (total > int.MaxValue) return false;
        }
        seconds = (int)total;
        return true;
    }
}
