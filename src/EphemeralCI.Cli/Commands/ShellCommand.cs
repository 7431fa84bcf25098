using System.ComponentModel;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using EphemeralCI.Cli.JobFiles;
using EphemeralCI.Cli.Terminal;
using EphemeralCI.Contracts.Runner;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class ShellSettings : ServerSettings
{
    [CommandOption("-t|--template <NAME>")]
    [Description("The runner template (default: default)")]
    public string? Template { get; set; }

    [CommandOption("--repository <OWNER/NAME>")]
    [Description("The repository checked out in the runner (default: this checkout's origin)")]
    public string? Repository { get; set; }

    [CommandOption("--ref <REF>")]
    [Description("Its ref (default: this checkout's branch)")]
    public string? Ref { get; set; }

    [CommandOption("--commit <SHA>")]
    [Description("Its commit (default: this checkout's HEAD)")]
    public string? Commit { get; set; }

    [CommandOption("--timeout <DURATION>")]
    [Description("The runner's whole life, e.g. 30m (default: the template's)")]
    public string? Timeout { get; set; }

    [CommandOption("--idle-timeout <DURATION>")]
    [Description("End the shell after this long without a keystroke (5s to 1h, default 10m)")]
    public string? IdleTimeout { get; set; }
}

/// <summary>`eci shell`: an interactive shell in a fresh runner; exits with the shell's exit code.</summary>
public sealed class ShellCommand(EciContext context, IGitCheckout git) : EciCommand<ShellSettings>(context)
{
    protected override async Task<int> RunAsync(ShellSettings settings, CancellationToken ct)
    {
        InteractiveSession.RequireTerminal();
        int? timeout = null, idle = null;
        if (settings.Timeout is { } t) timeout = Durations.TryParseSeconds(t, out var s) ? s : throw new CliException($"--timeout '{t}' is not a duration (e.g. 30m).", ExitCodes.Usage);
        if (settings.IdleTimeout is { } i) idle = Durations.TryParseSeconds(i, out var s) ? s : throw new CliException($"--idle-timeout '{i}' is not a duration (e.g. 10m).", ExitCodes.Usage);
        var facts = settings.Repository is null || settings.Ref is null || settings.Commit is null ? git.Read(Context.WorkingDirectory) : null;
        var repository = settings.Repository ?? GitCommandLine.RepositoryFromRemote(facts?.OriginUrl)
            ?? throw new CliException("No repository: pass --repository OWNER/NAME or run eci shell inside a checkout with an origin.", ExitCodes.Usage);
        var gitRef = settings.Ref ?? facts?.HeadRef ?? throw new CliException("No ref: pass --ref REF (HEAD is detached or this is not a checkout).", ExitCodes.Usage);
        var commit = settings.Commit ?? facts?.HeadSha ?? throw new CliException("No commit: pass --commit SHA.", ExitCodes.Usage);
        var spec = new
        {
            name = "eci shell",
            repository,
            @ref = gitRef,
            commitSha = commit,
            runnerTemplate = settings.Template ?? "default",
            timeoutSeconds = timeout,
            session = new { interactive = true, idleTimeoutSeconds = idle },
        };
        using var api = Connect(settings);
        var opened = await api.OpenSessionAsync(spec, Guid.NewGuid().ToString("N"), ct);
        return await new InteractiveSession(api, Context).RunAsync(opened.Value, ct);
    }
}

/// <summary>What `eci shell` and `eci jobs rerun --shell` share once the session is open: the terminal, then the session's end.</summary>
public sealed class InteractiveSession(EciApiClient api, EciContext context)
{
    public static void RequireTerminal()
    {
        if (!LocalTerminal.StdInIsTerminal || !LocalTerminal.IsTerminal(1))
            throw new CliException("An interactive shell needs a terminal: standard input and output are not one.", ExitCodes.Usage,
                ["Run it from a terminal; a script can send commands with the sessions API (docs/sessions.md) instead."]);
    }

    /// <summary>Attaches this terminal (raw) to the session's shell; deletes the session on every way out; the shell's exit code.</summary>
    public async Task<int> RunAsync(SessionSummary session, CancellationToken ct)
    {
        context.Err.MarkupLine($"Session [bold]{session.Id}[/] ({Markup.Escape($"{session.Repository} {session.Ref}")}, template {Markup.Escape(session.RunnerTemplate)}): starting a fresh runner; [grey]exit the shell to end it.[/]");
        int? result = null;
        try
        {
            var (cols, rows) = LocalTerminal.Size();
            using var socket = await api.ConnectTerminalAsync(session.Id, cols, rows, ct);
            using (LocalTerminal.EnterRaw())
            {
                result = await PumpAsync(socket, ct);
            }
            return result.Value;
        }
        finally
        {
            // Whatever ended eci — the shell, SIGTERM, an error — the runner goes with it. Not cancellable: it is the last thing done.
            try { await api.DeleteSessionAsync(session.Id, CancellationToken.None); }
            catch (Exception ex) when (ex is CliException or EciApiException)
            {
                context.Err.MarkupLine($"[yellow]Could not delete session {session.Id}:[/] {Markup.Escape(ex.Message)} (it ends at its idle timeout)");
            }
            if (result is { } code) context.Err.MarkupLine($"[grey]Session {session.Id} ended: the shell exited with {code}.[/]");
        }
    }

    private async Task<int> PumpAsync(WebSocket socket, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var send = new SemaphoreSlim(1, 1);
        async Task SendAsync(ReadOnlyMemory<byte> bytes, WebSocketMessageType type)
        {
            await send.WaitAsync(stop.Token);
            try { await socket.SendAsync(bytes, type, true, stop.Token); }
            finally { send.Release(); }
        }
        // A window resize is a signal: send the new size as a resize message.
        using var winch = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGWINCH, signal =>
        {
            var (cols, rows) = LocalTerminal.Size();
            _ = SendAsync(JsonSerializer.SerializeToUtf8Bytes(new TerminalControl(TerminalMessages.Resize, cols, rows), EciApiClient.Json), WebSocketMessageType.Text);
        });
        // The size may have changed between the connect and here.
        await SendAsync(JsonSerializer.SerializeToUtf8Bytes(new TerminalControl(TerminalMessages.Resize, LocalTerminal.Size().Cols, LocalTerminal.Size().Rows), EciApiClient.Json), WebSocketMessageType.Text);
        // Keystrokes: a blocking read on its own thread (standard input has no cancellable read); abandoned when the shell ends.
        _ = Task.Factory.StartNew(async () =>
        {
            using var stdin = Console.OpenStandardInput();
            var buffer = new byte[4096];
            int read;
            while (!stop.IsCancellationRequested && (read = await stdin.ReadAsync(buffer)) > 0)
            {
                try { await SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary); }
                catch (Exception) { return; }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

        using var stdout = Console.OpenStandardOutput();
        var incoming = new byte[64 * 1024];
        var text = new MemoryStream();
        try
        {
            while (true)
            {
                var message = await socket.ReceiveAsync(incoming, stop.Token);
                if (message.MessageType == WebSocketMessageType.Close)
                    throw new CliException($"The terminal was closed by the server ({message.CloseStatusDescription ?? "no reason given"}).", ExitCodes.Unreachable);
                if (message.MessageType == WebSocketMessageType.Binary)
                {
                    await stdout.WriteAsync(incoming.AsMemory(0, message.Count), stop.Token);
                    await stdout.FlushAsync(stop.Token);
                    continue;
                }
                text.Write(incoming, 0, message.Count);
                if (!message.EndOfMessage) continue;
                var control = JsonSerializer.Deserialize<TerminalControl>(text.ToArray(), EciApiClient.Json);
                text.SetLength(0);
                if (control?.Type == TerminalMessages.Exit) return control.Code ?? ExitCodes.Error;
                if (control?.Type == TerminalMessages.End)
                {
                    await stdout.WriteAsync("\r\n"u8.ToArray(), stop.Token);
                    context.Err.MarkupLine($"[yellow]The session ended: {Markup.Escape(control.Status ?? "?")}[/] {Markup.Escape(control.Reason ?? "")}");
                    return JobExitCodes.For(control.Status, control.Code);
                }
            }
        }
        catch (WebSocketException ex)
        {
            throw new CliException($"The terminal's connection was lost: {ex.Message}", ExitCodes.Unreachable);
        }
        finally
        {
            await stop.CancelAsync();
        }
    }
}

public sealed class JobsRerunSettings : JobIdSettings
{
    [CommandOption("--shell")]
    [Description("Open an interactive shell in a fresh runner made like the job's: its checkout, env, secrets and caches")]
    public bool Shell { get; set; }

    [CommandOption("--idle-timeout <DURATION>")]
    [Description("End the shell after this long without a keystroke (5s to 1h, default 10m)")]
    public string? IdleTimeout { get; set; }
}

/// <summary>`eci jobs rerun ID --shell`: debug a job on a new runner like its own (never the runner it ran on, which is gone).</summary>
public sealed class JobsRerunCommand(EciContext context) : EciCommand<JobsRerunSettings>(context)
{
    protected override async Task<int> RunAsync(JobsRerunSettings settings, CancellationToken ct)
    {
        if (!settings.Shell) throw new CliException("eci jobs rerun needs --shell: it opens a shell in a runner made like the job's.", ExitCodes.Usage,
            ["To run a job file again, use eci run FILE."]);
        InteractiveSession.RequireTerminal();
        int? idle = null;
        if (settings.IdleTimeout is { } i) idle = Durations.TryParseSeconds(i, out var s) ? s : throw new CliException($"--idle-timeout '{i}' is not a duration (e.g. 10m).", ExitCodes.Usage);
        using var api = Connect(settings);
        var opened = await api.OpenShellForJobAsync(settings.Id, idle, Guid.NewGuid().ToString("N"), ct);
        return await new InteractiveSession(api, Context).RunAsync(opened.Value, ct);
    }
}
