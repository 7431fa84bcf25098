using EphemeralCI.Cli.Commands;
using EphemeralCI.Cli.JobFiles;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Hosting;

/// <summary>The command tree. Secrets and cache commands come when their admin APIs exist (issues 4 and 5).</summary>
public static class EciApp
{
    /// <summary>Stands in for "-" (read from stdin), which the argument parser would take for a nameless option.</summary>
    public const string StdinMarker = "{stdin}";

    public static Task<int> RunAsync(string[] args, EciContext context, IGitCheckout? git = null, CancellationToken ct = default)
    {
        args = MarkStdin(args);
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("eci");
            config.ConfigureConsole(context.Out);
            config.Settings.Registrar.RegisterInstance(context);
            config.Settings.Registrar.RegisterInstance(git ?? new GitCommandLine());

            config.AddCommand<RunCommand>("run")
                .WithDescription("Submit a job file and follow it live; exits with the job's exit code")
                .WithExample("run", "examples/hello-world.yml")
                .WithExample("run", "job.yml", "--cancel-on-interrupt");

            config.AddBranch("jobs", jobs =>
            {
                jobs.SetDescription("List, inspect, follow and cancel jobs");
                jobs.AddCommand<JobsListCommand>("list").WithDescription("List jobs, newest first");
                jobs.AddCommand<JobsShowCommand>("show").WithDescription("Show one job");
                jobs.AddCommand<JobsLogsCommand>("logs").WithDescription("Print a job's log (--follow to stream it)");
                jobs.AddCommand<JobsEventsCommand>("events").WithDescription("Show a job's timeline");
                jobs.AddCommand<JobsCancelCommand>("cancel").WithDescription("Cancel a job and destroy its runner");
            });

            config.AddBranch("keys", keys =>
            {
                keys.SetDescription("Manage API keys (needs an admin key)");
                keys.AddCommand<KeysCreateCommand>("create").WithDescription("Create a key; it is printed once")
                    .WithExample("keys", "create", "--name", "ci", "--scope", "submit", "--scope", "read");
                keys.AddCommand<KeysListCommand>("list").WithDescription("List keys (never the keys themselves)");
                keys.AddCommand<KeysRevokeCommand>("revoke").WithDescription("Revoke a key");
            });

            config.AddBranch("config", cfg =>
            {
                cfg.SetDescription("Where the server is and which API key to use");
                cfg.AddCommand<ConfigSetCommand>("set").WithDescription("Store the server URL and/or API key")
                    .WithExample("config", "set", "--server", "http://localhost:5080", "--key", "-");
                cfg.AddCommand<ConfigShowCommand>("show").WithDescription("Show the server and the (masked) key in use");
            });
        });
        return app.RunAsync(args, ct);
    }

    internal static string[] MarkStdin(string[] args) =>
        args.Select((a, i) => a == "-" && i > 0 && args[i - 1] == "--key" ? StdinMarker : a == "--key=-" ? "--key=" + StdinMarker : a).ToArray();
}
