using System.Globalization;
using System.Text;

namespace EphemeralCI.Cli.Output;

/// <summary>
/// Writes a job's log to a terminal without letting the job drive the terminal. A job's output is text the job chose, so
/// as it is it could move the cursor, rewrite earlier lines, set the window title, hide text or fake the agent's lines.
/// Passed through: printable text, newlines, tabs, and SGR colour sequences (<c>ESC [ … m</c>, except conceal). Dropped:
/// every other escape sequence (CSI, OSC, DCS, APC, PM, SOS, two-byte ESC sequences). Shown as a visible symbol: every
/// other control character (backspace ␈, bell ␇, …, a lone carriage return becomes a new line, so it cannot overwrite
/// the line it ends). The runner agent's own lines (starting with U+001E, see <c>AgentLogLines</c> — no step can print
/// that byte) are shown in bold cyan on a colour terminal, always on a line of their own, with escapes stripped.
/// Stateful: a sequence split across chunks of the stream is recognised whole. <c>--raw</c> bypasses all of this.
/// </summary>
public sealed class JobLogWriter(TextWriter output, bool styled)
{
    public const char AgentMarker = '\u001e';
    private const int MaxSequenceLength = 256;
    private const string Reset = "\u001b[0m";
    private const string AgentStyle = "\u001b[1;36m";

    private enum State { Text, Escape, Csi, EscapeIntermediate, String, StringEscape }

    private readonly StringBuilder _sequence = new();
    private State _state = State.Text;
    private bool _atLineStart = true;
    private bool _inAgentLine;
    private bool _pendingCarriageReturn;
    private bool _coloured;

    /// <summary>Writes <paramref name="chunk"/> made safe, holding an unfinished escape sequence for the next chunk.</summary>
    public void Write(string chunk)
    {
        var text = new StringBuilder(chunk.Length + 16);
        foreach (var c in chunk) Process(c, text);
        output.Write(text.ToString());
        output.Flush();
    }

    /// <summary>End of the log: an unfinished sequence is dropped, a trailing carriage return ends the line, colours are reset.</summary>
    public void Complete()
    {
        var text = new StringBuilder();
        if (_pendingCarriageReturn) Emit('\n', text);
        _pendingCarriageReturn = false;
        _state = State.Text;
        _sequence.Clear();
        if (_inAgentLine) EndAgentLine(text);
        if (_coloured && styled) text.Append(Reset);
        _coloured = false;
        output.Write(text.ToString());
        output.Flush();
    }

    /// <summary>One-shot: the whole <paramref name="log"/> made safe (for tests and whole-log output).</summary>
    public static string Sanitize(string log, bool styled = false)
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        var sanitizer = new JobLogWriter(writer, styled);
        sanitizer.Write(log);
        sanitizer.Complete();
        return writer.ToString();
    }

    /// <summary>Text for one line of the CLI's own output (a step name, a message): every control character shown as a symbol, no escapes.</summary>
    public static string Plain(string text)
    {
        var sanitized = Sanitize(text);
        var builder = new StringBuilder(sanitized.Length);
        foreach (var c in sanitized) builder.Append(c is '\n' or '\t' ? ' ' : c);
        return builder.ToString();
    }

    private void Process(char c, StringBuilder text)
    {
        switch (_state)
        {
            case State.Text:
                if (_pendingCarriageReturn)
                {
                    _pendingCarriageReturn = false;
                    if (c == '\n') break; // CRLF: the LF below ends the line
                    Emit('\n', text);       // a lone CR would let a job overwrite the line it ends
                }
                if (c == '\u001b')
                {
                    _state = State.Escape;
                    _sequence.Clear().Append(c);
                    return;
                }
                if (c == '\r')
                {
                    _pendingCarriageReturn = true;
                    return;
                }
                break;
            case State.Escape:
                _sequence.Append(c);
                switch (c)
                {
                    case '[': _state = State.Csi; return;
                    case ']' or 'P' or 'X' or '^' or '_': _state = State.String; return;
                    case >= ' ' and <= '/': _state = State.EscapeIntermediate; return;
                    case >= '0' and <= '~': _state = State.Text; return; // ESC c, ESC 7, ESC M…: dropped
                    default: _state = State.Text; break;                    // not a sequence: drop ESC, keep the character
                }
                break;
            case State.EscapeIntermediate:
                _sequence.Append(c);
                if (c is >= ' ' and <= '/' && _sequence.Length < MaxSequenceLength) return;
                _state = State.Text;
                if (c is >= '0' and <= '~') return; // ESC ( B and the like: dropped
                break;
            case State.Csi:
                if (c is >= '0' and <= '?' or >= ' ' and <= '/')
                {
                    _sequence.Append(c);
                    if (_sequence.Length < MaxSequenceLength) return;
                    _state = State.Text; // too long to be real: dropped
                    return;
                }
                _state = State.Text;
                if (c is >= '@' and <= '~')
                {
                    if (c == 'm' && !_inAgentLine && IsColour(_sequence.ToString(2, _sequence.Length - 2)))
                    {
                        text.Append(_sequence).Append('m'); // colours stay, also in a file (less -R shows them)
                        _coloured = true;
                        _atLineStart = false;
                    }
                    return;
                }
                break; // broken sequence: dropped, the character is shown as itself
            case State.String:
                // OSC/DCS/APC… up to BEL or ST; a newline abandons it, so an unterminated one cannot swallow the rest of the log.
                if (c == '\u0007') { _state = State.Text; return; }
                if (c == '\u001b') { _state = State.StringEscape; return; }
                if (c == '\n') { _state = State.Text; break; }
                return;
            case State.StringEscape:
                _state = c == '\\' ? State.Text : State.String;
                if (c == '\n') { _state = State.Text; break; }
                return;
        }
        Emit(c, text);
    }

    private void Emit(char c, StringBuilder text)
    {
        if (c == AgentMarker)
        {
            if (!_atLineStart) text.Append('\n');
            if (styled) text.Append(Reset).Append(AgentStyle);
            _inAgentLine = true;
            _atLineStart = false;
            return;
        }
        if (c == '\n')
        {
            if (_inAgentLine) EndAgentLine(text);
            text.Append('\n');
            _atLineStart = true;
            return;
        }
        _atLineStart = false;
        if (c == '\t') text.Append(c);
        else if (c < ' ') text.Append((char)(0x2400 + c));   // ␀ … ␟
        else if (c == '\u007f') text.Append('\u2421');        // ␡
        else if (c is >= '\u0080' and <= '\u009f') text.Append('\ufffd'); // C1 controls (8-bit CSI, OSC…)
        else text.Append(c);
    }

    private void EndAgentLine(StringBuilder text)
    {
        if (styled) text.Append(Reset);
        _inAgentLine = false;
        _coloured = false;
    }

    /// <summary>
    /// An SGR parameter list of colours and text attributes: empty (reset) or numbers separated by ';' or ':', where
    /// 38/48/58 take their 5;n or 2;r;g;b arguments, and 8 (conceal: invisible text) is refused.
    /// </summary>
    internal static bool IsColour(string parameters)
    {
        if (parameters.Length == 0) return true;
        var parts = parameters.Split(';', ':');
        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i].Length == 0) continue;
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out var code)) return false;
            if (code is 38 or 48 or 58)
            {
                if (i + 1 < parts.Length && parts[i + 1] == "5") i += 2;
                else if (i + 1 < parts.Length && parts[i + 1] == "2") i += 4;
                continue;
            }
            if (code == 8) return false;
        }
        return true;
    }
}
