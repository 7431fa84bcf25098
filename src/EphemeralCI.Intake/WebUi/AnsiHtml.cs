using System.Globalization;
using System.Text;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.Intake.WebUi;

/// <summary>
/// Turns a job's log (text as the runner wrote it, escape sequences and all) into HTML for a &lt;pre&gt;:
/// every character is HTML-encoded, SGR colours and weights (<c>ESC[…m</c>) become spans with classes
/// (no inline styles, so the pages' CSP can forbid them), and every other control sequence — cursor
/// moves, screen clears, OSC titles and hyperlinks, C0/C1 controls — is dropped. The log is data
/// written by job code, so nothing in it may become markup, a link or a script.
/// <para>
/// One instance per stream: it keeps the current style and an escape sequence cut by a chunk boundary,
/// so the live log renders the same as the whole log. Each call returns balanced HTML (open spans are
/// closed at its end and reopened at the next call's start).
/// </para>
/// </summary>
public sealed class AnsiHtml
{
    private const char Esc = '\u001b';
    // A sequence longer than this is not one a terminal would act on: it is dropped, not buffered forever.
    private const int MaxSequenceLength = 256;

    // The agent's step header, "==> step 2/5: name" after the marker no step can print (AgentLogLines).
    private const string StepHeader = "==> step ";
    // Enough to hold the header and "123/456: ": a shorter tail at a chunk's end waits for the next chunk.
    private const int StepHeaderLookahead = 24;

    private readonly StringBuilder _pending = new();
    private readonly HashSet<int> _stepAnchors = [];
    private Style _style = Style.Default;
    private bool _afterCr;

    /// <summary>Renders a whole log at once.</summary>
    public static string Render(string text) => new AnsiHtml().Append(text);

    /// <summary>The HTML of <paramref name="chunk"/>, continuing the style and any escape sequence of the previous chunk.</summary>
    public string Append(string chunk)
    {
        var html = new StringBuilder(chunk.Length + 32);
        var text = new StringBuilder();
        var input = _pending.Length > 0 ? _pending.Append(chunk).ToString() : chunk;
        _pending.Clear();

        var i = 0;
        while (i < input.Length)
        {
            var c = input[i];
            if (c == Esc)
            {
                var end = SequenceEnd(input, i);
                if (end < 0)
                {
                    // Cut by the chunk boundary: keep it for the next chunk (unless it is too long to be real).
                    if (input.Length - i <= MaxSequenceLength) _pending.Append(input, i, input.Length - i);
                    break;
                }
                if (IsSgr(input, i, end))
                {
                    var next = _style.Apply(input.AsSpan(i + 2, end - i - 2));
                    if (next != _style)
                    {
                        Emit(html, text);
                        _style = next;
                    }
                }
                i = end + 1;
                continue;
            }

            if (c == AgentLogLines.Marker)
            {
                var (complete, step) = StepHeaderAt(input, i + 1);
                if (!complete)
                {
                    _pending.Append(input, i, input.Length - i);
                    break;
                }
                // The first header of each step is its anchor (#step-N); the step's "failed with" line is not a second one.
                if (step is { } n && _stepAnchors.Add(n))
                {
                    Emit(html, text);
                    html.Append("<span class=\"step-mark\" id=\"step-").Append(n).Append("\"></span>");
                }
                i++;
                continue;
            }

            if (c == '\r')
            {
                // \r\n is a line end; a lone \r (a progress bar redrawing) starts a new line rather than overwriting.
                _afterCr = true;
                i++;
                continue;
            }
            if (_afterCr)
            {
                _afterCr = false;
                if (c != '\n') text.Append('\n');
            }
            if (c is '\n' or '\t' || !char.IsControl(c))
            {
                switch (c)
                {
                    case '<': text.Append("&lt;"); break;
                    case '>': text.Append("&gt;"); break;
                    case '&': text.Append("&amp;"); break;
                    case '"': text.Append("&quot;"); break;
                    case '\'': text.Append("&#39;"); break;
                    default: text.Append(c); break;
                }
            }
            // Any other C0 or C1 control (BEL, backspace, NUL, the 8-bit CSI …) is dropped.
            i++;
        }
        Emit(html, text);
        return html.ToString();
    }

    private void Emit(StringBuilder html, StringBuilder text)
    {
        if (text.Length == 0) return;
        var classes = _style.Classes();
        if (classes.Length == 0) html.Append(text);
        else html.Append("<span class=\"").Append(classes).Append("\">").Append(text).Append("</span>");
        text.Clear();
    }

    /// <summary>
    /// Whether the text at <paramref name="start"/> is long enough to tell, and the step number of an agent
    /// step header there (<c>==> step N/M: </c>), or null for any other agent line.
    /// </summary>
    private static (bool Complete, int? Step) StepHeaderAt(string s, int start)
    {
        var available = s.Length - start;
        var prefix = Math.Min(available, StepHeader.Length);
        if (!s.AsSpan(start, prefix).SequenceEqual(StepHeader.AsSpan(0, prefix))) return (true, null);
        var colon = s.IndexOf(':', start, Math.Min(available, StepHeaderLookahead));
        if (colon < 0) return (available >= StepHeaderLookahead, null);
        var number = s.AsSpan(start + StepHeader.Length, colon - start - StepHeader.Length);
        var slash = number.IndexOf('/');
        return slash > 0 && int.TryParse(number[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 100_000
            ? (true, n)
            : (true, null);
    }

    /// <summary>The index of the last character of the escape sequence starting at <paramref name="start"/>, or -1 if the input ends first.</summary>
    private static int SequenceEnd(string s, int start)
    {
        if (start + 1 >= s.Length) return -1;
        var kind = s[start + 1];
        if (kind == '[')
        {
            // CSI: parameter and intermediate bytes (0x20–0x3F), then one final byte (0x40–0x7E).
            for (var j = start + 2; j < s.Length; j++)
            {
                var b = s[j];
                if (b is >= '@' and <= '~') return j;
                if (b is < ' ' or > '?') return j - 1; // malformed: drop what came so far, render the rest
            }
            return -1;
        }
        if (kind is ']' or 'P' or '_' or '^' or 'X')
        {
            // OSC, DCS, APC, PM, SOS: a string ended by BEL or ST (ESC \).
            for (var j = start + 2; j < s.Length; j++)
            {
                if (s[j] == '\u0007') return j;
                if (s[j] == Esc)
                {
                    if (j + 1 >= s.Length) return -1;
                    if (s[j + 1] == '\\') return j + 1;
                }
            }
            return -1;
        }
        // A two-character sequence (ESC 7, ESC c, ESC ( B needs one more).
        if (kind is '(' or ')' or '*' or '+' or '#' or '%') return start + 2 < s.Length ? start + 2 : -1;
        return start + 1;
    }

    private static bool IsSgr(string s, int start, int end) => s[start + 1] == '[' && s[end] == 'm';

    /// <summary>The SGR attributes we render: bold, dim, italic, underline and the 16 colours of each of foreground and background.</summary>
    internal readonly record struct Style(bool Bold, bool Dim, bool Italic, bool Underline, int Foreground, int Background)
    {
        // Foreground/Background: -1 none, 0–15 the palette (8–15 bright).
        public static Style Default => new(false, false, false, false, -1, -1);

        public Style Apply(ReadOnlySpan<char> parameters)
        {
            var style = this;
            if (parameters.IsEmpty) return Default;
            Span<int> codes = stackalloc int[32];
            var count = 0;
            foreach (var range in parameters.Split(';'))
            {
                if (count == codes.Length) break;
                var part = parameters[range];
                // An empty parameter means 0; one that is not a number (the colon form 38:2:…) is ignored.
                codes[count++] = part.IsEmpty ? 0 : int.TryParse(part, out var code) ? code : -1;
            }
            for (var k = 0; k < count; k++)
            {
                var code = codes[k];
                switch (code)
                {
                    case 0: style = Default; break;
                    case 1: style = style with { Bold = true }; break;
                    case 2: style = style with { Dim = true }; break;
                    case 3: style = style with { Italic = true }; break;
                    case 4: style = style with { Underline = true }; break;
                    case 22: style = style with { Bold = false, Dim = false }; break;
                    case 23: style = style with { Italic = false }; break;
                    case 24: style = style with { Underline = false }; break;
                    case >= 30 and <= 37: style = style with { Foreground = code - 30 }; break;
                    case 39: style = style with { Foreground = -1 }; break;
                    case >= 40 and <= 47: style = style with { Background = code - 40 }; break;
                    case 49: style = style with { Background = -1 }; break;
                    case >= 90 and <= 97: style = style with { Foreground = code - 90 + 8 }; break;
                    case >= 100 and <= 107: style = style with { Background = code - 100 + 8 }; break;
                    case 38 or 48:
                        // 38;5;n (256 colours: the first 16 kept, the rest left default) or 38;2;r;g;b (true colour, left default).
                        var palette = k + 2 < count && codes[k + 1] == 5 ? codes[k + 2] : -1;
                        if (palette is >= 0 and <= 15) style = code == 38 ? style with { Foreground = palette } : style with { Background = palette };
                        k += k + 1 < count && codes[k + 1] == 5 ? 2 : k + 1 < count && codes[k + 1] == 2 ? 4 : 0;
                        break;
                }
            }
            return style;
        }

        public string Classes()
        {
            if (this == Default) return "";
            var classes = new List<string>(4);
            if (Bold) classes.Add("ansi-bold");
            if (Dim) classes.Add("ansi-dim");
            if (Italic) classes.Add("ansi-italic");
            if (Underline) classes.Add("ansi-underline");
            if (Foreground >= 0) classes.Add($"ansi-fg{Foreground}");
            if (Background >= 0) classes.Add($"ansi-bg{Background}");
            return string.Join(' ', classes);
        }
    }
}
