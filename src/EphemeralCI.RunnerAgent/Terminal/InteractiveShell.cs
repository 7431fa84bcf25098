using System.Net.WebSockets;
using System.Text.Json;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent.Terminal;

/// <summary>
/// An interactive session's one "command": <c>bash -i</c> on a <see cref="PseudoTerminal"/>, joined to eci through the intake's
/// terminal WebSocket. The shell starts when the first terminal attaches (so its first prompt is seen), every byte it prints also
/// goes to the job's log through the masker (the record of what was done; input shows there as the terminal echoed it), and its
/// exit code is the session's. A dropped WebSocket is reconnected while the shell lives; the shell is ended once no keystroke
/// has come for the idle timeout.
/// </summary>
internal sealed class InteractiveShell(IntakeClient intake, MaskingLog log, TimeSpan idle)
{
    /// <summary>The exit code when no terminal attached within the idle timeout (nothing ran).</summary>
    public const int NeverAttached = 0;

    private readonly SemaphoreSlim _send = new(1, 1);
    private volatile WebSocket? _socket;
    private PseudoTerminal? _terminal;
    private readonly TaskCompletionSource<PseudoTerminal> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastInputTicks = DateTimeOffset.UtcNow.UtcTicks;

    public async Task<int> RunAsync(string workingDirectory, IReadOnlyDictionary<string, string> environment, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var connection = Task.Run(() => ConnectionLoopAsync(workingDirectory, environment, stop.Token), stop.Token);
        Task? output = null;
        try
        {
            if (await WaitIdleAsync(_started.Task, stop.Token) is not { } terminal)
            {
                await log.WriteAgentLineAsync($"==> no terminal attached for {idle.TotalSeconds:0} s: ending the session", ct);
                return NeverAttached;
            }
            output = Task.Factory.StartNew(() => PumpOutputAsync(terminal, ct), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
            if (await WaitIdleAsync(terminal.Shell.WaitForExitAsync(stop.Token).ContinueWith(_ => terminal, TaskScheduler.Default), stop.Token) is null)
            {
                await log.WriteAgentLineAsync($"==> no keystroke for {idle.TotalSeconds:0} s: ending the shell", ct);
                terminal.Shell.Kill(entireProcessTree: true);
                await terminal.Shell.WaitForExitAsync(ct);
            }
            // What the shell printed last reaches eci before its exit does (a background job holding the terminal is not waited for).
            await Task.WhenAny(output, Task.Delay(TimeSpan.FromSeconds(2), ct));
            var code = terminal.Shell.ExitCode;
            await SendAsync(JsonSerializer.SerializeToUtf8Bytes(new TerminalControl(TerminalMessages.Exit, Code: code), AgentJson.Default.TerminalControl), WebSocketMessageType.Text, ct);
            return code;
        }
        finally
        {
            await stop.CancelAsync();
            // Disposing wakes the output thread if it still waits (a background job holding the terminal); the master's fd is
            // closed only once that thread let go of it. Joined, so nothing it read reaches the log after the shell's end.
            _terminal?.Dispose();
            if (output is not null)
            {
                try { await output.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None); }
                catch (Exception) { /* a log write that outlived the shell: the record ends here */ }
            }
            if (_socket is { State: WebSocketState.Open } socket)
            {
                try { await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "the shell exited", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None); }
                catch (Exception) { /* the intake's end is gone already */ }
            }
            try { await connection; } catch (Exception) { /* ended with the shell */ }
        }
    }

    /// <summary><paramref name="task"/>'s result, or null once no keystroke has come for the idle timeout.</summary>
    private async Task<PseudoTerminal?> WaitIdleAsync(Task<PseudoTerminal> task, CancellationToken ct)
    {
        while (true)
        {
            var left = new DateTimeOffset(Interlocked.Read(ref _lastInputTicks), TimeSpan.Zero) + idle - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero) return null;
            if (await Task.WhenAny(task, Task.Delay(left, ct)) == task) return await task;
        }
    }

    private async Task ConnectionLoopAsync(string workingDirectory, IReadOnlyDictionary<string, string> environment, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var socket = await intake.ConnectTerminalAsync(ct);
                _socket = socket;
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer, ct);
                    if (result.MessageType == WebSocketMessageType.Close) break;
                    Interlocked.Exchange(ref _lastInputTicks, DateTimeOffset.UtcNow.UtcTicks);
                    if (result.MessageType == WebSocketMessageType.Binary)
                    {
                        _terminal?.Write(buffer.AsSpan(0, result.Count));
                        continue;
                    }
                    // The intake's control messages are whole and small; a partial one is not one of them.
                    if (!result.EndOfMessage) continue;
                    var control = JsonSerializer.Deserialize(buffer.AsSpan(0, result.Count), AgentJson.Default.TerminalControl);
                    if (control is null || !TerminalMessages.ValidSize(control.Cols, control.Rows)) continue;
                    if (control.Type == TerminalMessages.Attach && _terminal is null)
                    {
                        _terminal = PseudoTerminal.Start(workingDirectory, environment, control.Cols!.Value, control.Rows!.Value);
                        _started.TrySetResult(_terminal);
                    }
                    else
                    {
                        _terminal?.Resize(control.Cols!.Value, control.Rows!.Value);
                    }
                }
            }
            catch (Exception ex) when (ex is WebSocketException or JsonException or HttpRequestException or IOException && !ct.IsCancellationRequested)
            {
                Console.Error.WriteLine($"runner-agent: terminal connection lost, reconnecting: {ex.Message}");
            }
            catch (OperationCanceledException) { return; }
            if (!ct.IsCancellationRequested) await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    private async Task PumpOutputAsync(PseudoTerminal terminal, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = terminal.Read(buffer)) > 0)
        {
            var bytes = buffer.AsMemory(0, read);
            // Live to the person at the terminal as it is (they hold the session's secrets anyway); masked into the record.
            await SendAsync(bytes, WebSocketMessageType.Binary, ct);
            await log.WriteStepOutputAsync(bytes, ct);
        }
    }

    private async Task SendAsync(ReadOnlyMemory<byte> bytes, WebSocketMessageType type, CancellationToken ct)
    {
        if (_socket is not { } socket) return;
        await _send.WaitAsync(ct);
        try
        {
            if (socket.State == WebSocketState.Open) await socket.SendAsync(bytes, type, true, ct);
        }
        catch (Exception ex) when (ex is WebSocketException or IOException)
        {
            // Lost with the connection: the log keeps it; the connection loop reconnects.
        }
        finally { _send.Release(); }
    }
}
