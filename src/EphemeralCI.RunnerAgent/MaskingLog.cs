using System.Text;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// The only way the job's output reaches the log: every byte passes the <see cref="SecretMasker"/>
/// before the <see cref="LogStreamer"/> ships it. A flush (end of a step) releases the masker's held-back tail.
/// </summary>
public sealed class MaskingLog(LogStreamer inner, SecretMasker masker)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public Task WriteLineAsync(string text, CancellationToken ct) => WriteAsync(Encoding.UTF8.GetBytes(text + "\n"), ct);

    /// <summary>One of the agent's own lines (<c>==> …</c>), marked so that no step can imitate it (<see cref="AgentLogLines"/>).</summary>
    public Task WriteAgentLineAsync(string text, CancellationToken ct) =>
        WriteAsync(Encoding.UTF8.GetBytes(AgentLogLines.Marker + text.Replace(AgentLogLines.Marker, '\u241e') + "\n"), ct);

    /// <summary>What a step printed: any marker byte in it is replaced, so it can never start an agent line.</summary>
    public Task WriteStepOutputAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct) => WriteAsync(AgentLogLines.NeutralizeStepOutput(bytes), ct);

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var masked = masker.Process(bytes.Span);
            if (masked.Length > 0) await inner.WriteAsync(masked, ct);
        }
        finally { _gate.Release(); }
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var rest = masker.Flush();
            if (rest.Length > 0) await inner.WriteAsync(rest, ct);
        }
        finally { _gate.Release(); }
        await inner.FlushAsync(ct);
    }
}
