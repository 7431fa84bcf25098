using System.Text.Json.Serialization;

namespace EphemeralCI.Contracts.Runner;

/// <summary>
/// The terminal WebSocket of an interactive session, on both legs (eci ↔ intake, intake ↔ agent): a binary message is
/// terminal bytes (keystrokes towards the runner, the pseudo-terminal's output from it); a text message is one
/// <see cref="TerminalControl"/> as JSON. Raw bytes stay binary so a keystroke costs no encoding and output needs no escaping.
/// </summary>
public static class TerminalMessages
{
    /// <summary>eci → runner: the local window's size changed.</summary>
    public const string Resize = "resize";
    /// <summary>runner → eci: the shell exited with <see cref="TerminalControl.Code"/>; the session ends.</summary>
    public const string Exit = "exit";
    /// <summary>intake → eci: the session ended without the shell's exit (deleted, timed out, runner lost).</summary>
    public const string End = "end";
    /// <summary>intake → agent: a terminal is attached, at this size (the agent starts the shell at the first).</summary>
    public const string Attach = "attach";

    /// <summary>Largest control message either side accepts; anything longer closes the socket.</summary>
    public const int MaxControlBytes = 4096;
    /// <summary>Window sizes outside 1..<see cref="MaxDimension"/> are refused.</summary>
    public const int MaxDimension = 2000;

    public static bool ValidSize(int? cols, int? rows) => cols is >= 1 and <= MaxDimension && rows is >= 1 and <= MaxDimension;
}

/// <summary>One control message: <c>{type, cols?, rows?, code?, status?, reason?}</c>.</summary>
public sealed record TerminalControl(string Type, int? Cols = null, int? Rows = null, int? Code = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Status = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Reason = null);
