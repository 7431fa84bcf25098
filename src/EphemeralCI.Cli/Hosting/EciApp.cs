using Spectre.Console;
using EphemeralCI.Cli.Commands;
using EphemeralCI.Cli.JobFiles;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Hosting;

/// <summary>The command tree.</summary>
public static class EciApp
{
    /// <summary>Stands in for "-" (read from stdin), which the argument parser would take for a nameless option.</summary>
    public const string StdinMarker = "{stdin}";

    /// <summary>The CLI's version (the one its User-Agent sends).</summary>
    public static string Version { get; } = typeof(EciApp).Assembly.GetName().Version?.ToString(3) ?? "0";

    public static Task<int> RunAsync(string[] args, EciContext context, IGitCheckout? git = null, CancellationToken ct = default)
    {
        args = MarkStdin(args);
        if (SecretInput.RefuseValueOnCommandLine(args) is { } refusal)
        {
            context.Err.MarkupLine($"[red]error:[/] {Markup.Escape(refusal)}");
            context.Err.MarkupLine($"  {Markup.Escape("Pipe it: printf '%s' \"$VALUE\" | eci secrets set NAME --repo GLOB --ref GLOB")}");
            return Task.FromResult(ExitCodes.Usage);
        }
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("eci");
            config.SetApplicationVersion(Version); // `eci --version`, what a bug report or a CI log should start with
            config.ConfigureConsole(context.Out);
            config.Settings.Registrar.RegisterInstance(context);
            config.Settings.Registrar.RegisterInstance(git ?? new GitCommandLine());

            config.AddCommand<RunCommand>("run")
                .WithDescription("Submit a job file and follow it live; exits with the job's exit code")
                .WithExample("run", "examples/hello-world.yml")
                .WithExample("run", "job.yml", "--cancel-on-interrupt");

            config.AddCommand<ShellCommand>("shell")
                .WithDescription("Open an interactive shell in a fresh runner (a real terminal); exits with the shell's exit code")
                .WithExample("shell")
                .WithExample("shell", "--template", "default", "--repository", "acme/widgets", "--ref", "refs/heads/main", "--commit", "0123abc…");

            config.AddBranch("jobs", jobs =>
            {
                jobs.SetDescription("List, inspect, follow and cancel jobs");
                jobs.AddCommand<JobsListCommand>("list").WithDescription("List jobs, newest first");
                jobs.AddCommand<JobsShowCommand>("show").WithDescription("Show one job");
                jobs.AddCommand<JobsLogsCommand>("logs").WithDescription("Print a job's log (--follow to stream it)");
                jobs.AddCommand<JobsEventsCommand>("events").WithDescription("Show a job's timeline");
                jobs.AddCommand<JobsRerunCommand>("rerun").WithDescription("--shell: a shell in a fresh runner made like the job's (checkout, env, secrets, caches)")
                    .WithExample("jobs", "rerun", "6f1c1e4e-8a4b-4a6a-9d59-2d9d5a3e0c11", "--shell");
                jobs.AddCommand<JobsCancelCommand>("cancel").WithDescription("Cancel a job and destroy its runner");
                jobs.AddCommand<JobsVerifyCommand>("verify").WithDescription("Check a job's signed attestation: signature, subject, teardown (exit 0 valid, 6 not)")
                    .WithExample("jobs", "verify", "6f1c1e4e-8a4b-4a6a-9d59-2d9d5a3e0c11")
                    .WithExample("jobs", "verify", "--file", "envelope.json", "--jwks", "jwks.json");
            });

            config.AddBranch("gitlab", gitlab =>
            {
                gitlab.SetDescription("GitLab custom executor driver: set as config_exec, prepare_exec, run_exec and cleanup_exec (docs/gitlab.md)");
                gitlab.AddCommand<GitLabConfigCommand>("config").WithDescription("Print the driver's configuration JSON for gitlab-runner");
                gitlab.AddCommand<GitLabPrepareCommand>("prepare").WithDescription("Open the job's session (a fresh runner) from its CUSTOM_ENV_* variables");
                gitlab.AddCommand<GitLabRunCommand>("run").WithDescription("Run one stage's generated script in the job's session");
                gitlab.AddCommand<GitLabCleanupCommand>("cleanup").WithDescription("Delete the job's session; its runner is destroyed");
            });

            config.AddBranch("keys", keys =>
            {
                keys.SetDescription("Manage API keys (needs an admin key)");
                keys.AddCommand<KeysCreateCommand>("create").WithDescription("Create a key; it is printed once")
                    .WithExample("keys", "create", "--name", "ci", "--scope", "submit", "--scope", "read", "--repo", "acme/*", "--ref", "refs/heads/**");
                keys.AddCommand<KeysListCommand>("list").WithDescription("List keys (never the keys themselves)");
                keys.AddCommand<KeysRevokeCommand>("revoke").WithDescription("Revoke a key");
            });

            config.AddBranch("secrets", secrets =>
            {
                secrets.SetDescription("Manage the secrets broker's secrets (needs the secrets admin token)");
                secrets.AddCommand<SecretsSetCommand>("set").WithDescription("Create a secret or add a version; the value is read from stdin only")
                    .WithExample("secrets", "set", "NPM_TOKEN", "--repo", "acme/*", "--ref", "refs/heads/main", "<", "token.txt");
                secrets.AddCommand<SecretsListCommand>("list").WithDescription("List secrets with their policies (never their values)");
                secrets.AddCommand<SecretsShowCommand>("show").WithDescription("Show a secret's policy and versions (never its value)");
                secrets.AddCommand<SecretsPolicyCommand>("policy").WithDescription("Replace which jobs may receive a secret; the value stays")
                    .WithExample("secrets", "policy", "NPM_TOKEN", "--repo", "acme/*", "--ref", "refs/tags/v*", "--environment", "release");
                secrets.AddCommand<SecretsDeleteCommand>("delete").WithDescription("Delete a secret and every version of it");
                secrets.AddCommand<SecretsAuditCommand>("audit").WithDescription("Who set, changed, received or was refused which secret");
            });

            config.AddBranch("cache", cache =>
            {
                cache.SetDescription("Inspect and prune the build cache (needs the cache admin token)");
                cache.AddCommand<CacheUsageCommand>("usage").WithDescription("Stored bytes and entries per repository, against the quota");
                cache.AddCommand<CacheListCommand>("list").WithDescription("List cache entries, newest first")
                    .WithExample("cache", "list", "--repo", "acme/widgets");
                cache.AddCommand<CacheDeleteCommand>("delete").WithDescription("Delete a cache entry and its object");
            });

            config.AddBranch("config", cfg =>
            {
                cfg.SetDescription("Where the server is and which credentials to use");
                cfg.AddCommand<ConfigSetCommand>("set").WithDescription("Store server URLs and credentials (credentials read from stdin with '-')")
                    .WithExample("config", "set", "--server", "http://127.0.0.1:5180", "--key", "-")
                    .WithExample("config", "set", "--secrets-token", "-");
                cfg.AddCommand<ConfigShowCommand>("show").WithDescription("Show the servers and the (masked) credentials in use");
            });
        });
        return app.RunAsync(args, ct);
    }

    /// <summary>The options whose value may be "-": credentials, read from stdin so they stay out of command lines.</summary>
    private static readonly string[] StdinOptions = ["--key", "--secrets-token", "--cache-token"];

    internal static string[] MarkStdin(string[] args) =>
        args.Select((a, i) =>
            a == "-" && i > 0 && StdinOptions.Contains(args[i - 1]) ? StdinMarker
            : StdinOptions.FirstOrDefault(o => a == o + "=-") is { } option ? option + "=" + StdinMarker
            : a).ToArray();
}
