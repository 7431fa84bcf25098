using System.Text.RegularExpressions;
using EphemeralCI.Cli.Hosting;
using EphemeralCI.Cli.JobFiles;
using EphemeralCI.IntegrationTests.Intake;
using Spectre.Console;

namespace EphemeralCI.IntegrationTests.Cli;

/// <summary>
/// Runs `eci` in-process against a real host (the intake of an <see cref="IntakeFactory"/>, or the
/// secrets broker): the CLI's HttpClient goes through the test server's handler, and its terminals are captured.
/// </summary>
public sealed partial class CliHarness(HttpMessageHandler? handler) : IDisposable
{
    private readonly string _dir = System.IO.Directory.CreateTempSubdirectory("eci-cli-").FullName;

    public CliHarness(IntakeFactory app) : this(app.Server.CreateHandler())
    {
    }

    public string Directory => _dir;
    public Dictionary<string, string> Environment { get; } = new() { ["ECI_SERVER"] = "http://localhost/" };
    public HttpMessageHandler? Handler { get; set; } = handler;
    /// <summary>What the next commands read on stdin.</summary>
    public string StdIn { get; set; } = "";
    /// <summary>Stdin is a terminal (nothing piped in).</summary>
    public bool StdInIsTerminal { get; set; }
    public ManualInterrupts Interrupts { get; } = new();
    public IGitCheckout Git { get; set; } = new NoGit();

    public string WriteFile(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    public CliRun Start(string key, params string[] args)
    {
        var env = new Dictionary<string, string>(Environment) { ["ECI_API_KEY"] = key };
        var stdout = new SafeWriter();
        var stderr = new SafeWriter();
        var context = new EciContext
        {
            Out = Console(stdout),
            Err = Console(stderr),
            StdOut = stdout,
            StdErr = stderr,
            StdIn = new StringReader(StdIn),
            StdInIsTerminal = StdInIsTerminal,
            Environment = name => env.GetValueOrDefault(name),
            ConfigPath = Path.Combine(_dir, "config.json"),
            HttpHandler = Handler,
            Interrupts = Interrupts,
            CanPrompt = false,
            WorkingDirectory = _dir,
        };
        return new CliRun(EciApp.RunAsync(args, context, Git), stdout, stderr);
    }

    public Task<CliRun> RunAsync(string key, params string[] args) => Start(key, args).CompletedAsync();

    private static IAnsiConsole Console(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 250; // no wrapping inside ids and messages
        return console;
    }

    public void Dispose() => System.IO.Directory.Delete(_dir, recursive: true);

    private sealed class NoGit : IGitCheckout
    {
        public GitFacts? Read(string directory) => null;
    }
}

public sealed partial class CliRun(Task<int> exit, SafeWriter stdout, SafeWriter stderr)
{
    public Task<int> Exit => exit;
    public string StdOut => stdout.ToString();
    public string StdErr => stderr.ToString();
    public int ExitCode => exit.Result;

    public async Task<CliRun> CompletedAsync()
    {
        try
        {
            await exit.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"eci did not finish:\n{this}");
        }
        return this;
    }

    /// <summary>The job id `eci run` announces once it has submitted and starts following.</summary>
    public async Task<Guid> FollowingJobAsync()
    {
        Guid id = default;
        await IntakeFactory.EventuallyAsync(() =>
        {
            if (exit.IsCompleted) throw new InvalidOperationException($"eci exited {exit.Result} before following:\n{StdErr}");
            var match = FollowingPattern().Match(StdErr);
            if (match.Success) id = Guid.Parse(match.Groups[1].Value);
            return Task.FromResult(match.Success);
        }, "eci run to start following");
        return id;
    }

    [GeneratedRegex(@"Job ([0-9a-f-]{36}) is \w+; following it")]
    private static partial Regex FollowingPattern();

    public override string ToString() => $"exit {(exit.IsCompleted ? exit.Result : "(running)")}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
}

/// <summary>A writer both the CLI's threads and the test may use at once.</summary>
public sealed class SafeWriter : StringWriter
{
    private readonly Lock _lock = new();
    public override void Write(char value) { lock (_lock) base.Write(value); }
    public override void Write(string? value) { lock (_lock) base.Write(value); }
    public override void Write(char[] buffer, int index, int count) { lock (_lock) base.Write(buffer, index, count); }
    public override void WriteLine(string? value) { lock (_lock) base.WriteLine(value); }
    public override string ToString() { lock (_lock) return base.ToString(); }
}

/// <summary>Ctrl+C on demand.</summary>
public sealed class ManualInterrupts : IInterruptSource
{
    private readonly List<Action> _handlers = [];

    public IDisposable Subscribe(Action onInterrupt)
    {
        lock (_handlers) _handlers.Add(onInterrupt);
        return new Unsubscriber(() => { lock (_handlers) _handlers.Remove(onInterrupt); });
    }

    public void Trigger()
    {
        Action[] handlers;
        lock (_handlers) handlers = [.. _handlers];
        foreach (var h in handlers) h();
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
