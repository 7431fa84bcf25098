namespace EphemeralCI.Contracts.Runner;

/// <summary>
/// How the runner agent marks its own lines in a job's log (<c>==> step 2/3: build</c>, cache and secret outcomes), so
/// that a step cannot print a fake one: an agent line starts with <see cref="Marker"/> (U+001E, RECORD SEPARATOR), and the
/// agent replaces that byte in everything a step prints with <see cref="StepReplacement"/>. 0x1E is never part of a
/// multi-byte UTF-8 sequence, so the replacement works on raw bytes. Readers (the CLI) show marked lines distinctly;
/// <c>eci … --raw</c> keeps the marker for scripts.
/// </summary>
public static class AgentLogLines
{
    public const char Marker = '\u001e';
    public const byte MarkerByte = 0x1e;

    /// <summary>U+241E SYMBOL FOR RECORD SEPARATOR: what a step's own 0x1E becomes (visible, and never a marker).</summary>
    public static ReadOnlySpan<byte> StepReplacement => "\u241e"u8;

    /// <summary>A step's output with every marker byte replaced; the same memory when it holds none (the usual case).</summary>
    public static ReadOnlyMemory<byte> NeutralizeStepOutput(ReadOnlyMemory<byte> output)
    {
        var span = output.Span;
        var first = span.IndexOf(MarkerByte);
        if (first < 0) return output;
        var result = new List<byte>(span.Length + 8);
        foreach (var b in span)
        {
            if (b == MarkerByte) result.AddRange(StepReplacement);
            else result.Add(b);
        }
        return result.ToArray();
    }
}
