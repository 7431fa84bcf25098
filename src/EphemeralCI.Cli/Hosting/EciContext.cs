using System.Runtime.InteropServices;
using Spectre.Console;

namespace EphemeralCI.Cli.Hosting;

/// <summary>
/// Everything a command touches outside itself: terminals, environment, config file location,
/// the HTTP handler and Ctrl+C. The real process gets <see cref="ForProcess"/>; tests build their
/// own so commands run in-process against an in-memory server with captured output.
/// </summary>
public sealed class EciContext
{
    /// <summary>Tables and human output: standard output.</summary>
    public required IAnsiConsole Out { get; init; }
    /// <summary>Progress, prompts and errors: standard error, so stdout stays clean for logs and --json.</summary>
    public required IAnsiConsole Err { get; init; }
    /// <summary>Raw standard output for job logs and JSON (no markup, no wrapping).</summary>
    public required TextWriter StdOut { get; init; }
    /// <summary>Raw standard error: the job's log goes here under --json, leaving stdout to the JSON.</summary>
    public required TextWriter StdErr { get; init; }
    public required TextReader StdIn { get; init; }
    public required Func<string, string?> Environment { get; init; }
    public required string ConfigPath { get; init; }
    /// <summary>null: a normal SocketsHttpHandler. Tests pass the in-memory server's handler.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }
    public required IInterruptSource Interrupts { get; init; }
    /// <summary>Whether a person is there to answer a question (stdin and stderr are terminals).</summary>
    public bool CanPrompt { get; init; }
    /// <summary>Whether stdin is a terminal, i.e. nothing was piped in (a secret's value must be).</summary>
    public bool StdInIsTerminal { get; init; }
    /// <summary>Where git is asked about the checkout when a job file leaves out repository/ref/commit.</summary>
    public string WorkingDirectory { get; init; } = System.Environment.CurrentDirectory;

    public static EciContext ForProcess()
    {
        var stdout = Console.Out;
        return new EciContext
        {
            Out = AnsiConsole.Console,
            Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }),
            StdOut = stdout,
            StdErr = Console.Error,
            StdIn = Console.In,
            Environment = System.Environment.GetEnvironmentVariable,
            ConfigPath = DefaultConfigPath(System.Environment.GetEnvironmentVariable),
            Interrupts = new ProcessInterruptSource(),
            CanPrompt = !Console.IsInputRedirected && !Console.IsErrorRedirected,
            StdInIsTerminal = !Console.IsInputRedirected,
        };
    }

    /// <summary>$ECI_CONFIG, else $XDG_CONFIG_HOME/eci/config.json, else ~/.config/eci/config.json.</summary>
    public static string DefaultConfigPath(Func<string, string?> env)
    {
        if (env("ECI_CONFIG") is { Length: > 0 } explicitPath) return explicitPath;
        var configHome = env("XDG_CONFIG_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(configHome, "eci", "config.json");
    }
}

/// <summary>Ctrl+C / SIGTERM, as something a command can subscribe to while it follows a job.</summary>
public interface IInterruptSource
{
    /// <summary>Calls <paramref name="onInterrupt"/> on each interrupt until disposed.
    /// While subscribed, the first interrupt does not kill the process; a second one does.</summary>
    IDisposable Subscribe(Action onInterrupt);
}

public sealed class ProcessInterruptSource : IInterruptSource
{
    public IDisposable Subscribe(Action onInterrupt)
    {
        var count = 0;
        void Handle(PosixSignalContext context)
        {
            // The first signal is ours to handle (ask, cancel, detach); a second means "really stop now".
            if (Interlocked.Increment(ref count) == 1)
            {
                context.Cancel = true;
                onInterrupt();
            }
        }
        var registrations = new[]
        {
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle),
        };
        return new Disposer(registrations);
    }

    private sealed class Disposer(PosixSignalRegistration[] registrations) : IDisposable
    {
        public void Dispose()
        {
            foreach (var r in registrations) r.Dispose();
        }
    }
}
