using System.Security.Cryptography;
using EphemeralCI.Cache;
using EphemeralCI.GitHubActions;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Services;
using EphemeralCI.Intake;
using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using EphemeralCI.Provisioner;
using EphemeralCI.SecretsBroker;
using EphemeralCI.Server.Embedded;
using Microsoft.Extensions.Configuration.Memory;
using Scalar.AspNetCore;

namespace EphemeralCI.Server;

/*
 * The all-in-one server: the same four modules the AppHost runs as services, in one process.
 *
 *   ┌──────────── one WebApplication on http://127.0.0.1:5180 ────────────┐
 *   │ intake API ─┐                                                        │
 *   │ secrets broker ─ one MassTransit bus (in-memory, or RabbitMQ) ─ provisioner ── bwrap runners
 *   │ cache ──────┘                                                        │
 *   │ GitHub Actions adapter (when GitHubActions:AppId is set): webhooks → one-job runners through the intake
 *   └─ data folder: intakedb.db provisionerdb.db secretsdb.db cachedb.db githubactionsdb.db (SQLite), cache/, runners/, keys/
 *
 * Every part switches to the real service when its connection string is given (intakedb,
 * provisionerdb, secretsdb, cachedb: Postgres; rabbitmq; redis; minio).
 */
public static class ServerExtensions
{
    public const string DefaultUrl = "http://127.0.0.1:5180";

    /// <summary>Composes every module; false (after telling the operator why) when this machine cannot run jobs.</summary>
    public static bool AddEphemeralCIServer(this WebApplicationBuilder builder)
    {
        if (LocalSandboxPrerequisites.Problem(builder.Configuration) is { } problem)
        {
            Console.Error.WriteLine(problem);
            return false;
        }

        var data = ServerDataDirectory.Open(builder.Configuration);
        if (string.IsNullOrWhiteSpace(builder.Configuration["urls"])) builder.WebHost.UseUrls(DefaultUrl);
        // Lowest precedence: anything set in appsettings, the environment or the command line wins.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = EmbeddedDefaults(builder.Configuration, data),
        });

        builder.Services.AddSingleton(data);
        builder.Services.AddSingleton(new EmbeddedDatabases(data.Root, typeof(ServerEntryPoint).Assembly.GetName().Name!));

        builder.AddServiceDefaults();
        // The broker first: its in-process key ring then signs and checks every job token (no HTTP to itself).
        builder.AddSecretsBroker(addMessaging: false);
        builder.AddIntake(addMessaging: false);
        builder.AddProvisioner(addMessaging: false);
        // The cache's forge credentials (Checkout:TokenSecret) come from the broker in this process.
        builder.Services.AddSingleton<EphemeralCI.Cache.Git.IOperatorSecrets, InProcessOperatorSecrets>();
        builder.AddCache();
        // Off unless GitHubActions:AppId is set; its jobs and App secrets stay in this process (no key to store).
        builder.Services.AddSingleton<IRunnerJobs, InProcessRunnerJobs>();
        builder.Services.AddSingleton<IGitHubAppSecrets, InProcessGitHubAppSecrets>();
        builder.AddGitHubActions();
        builder.AddEciMessaging(bus =>
        {
            SecretsBrokerExtensions.AddSecretsBrokerConsumers(bus);
            IntakeExtensions.AddIntakeConsumers(bus);
            ProvisionerExtensions.AddProvisionerConsumers(bus);
        });

        builder.Services.AddProblemDetails();
        builder.Services.AddIntakeOpenApi();
        builder.Services.AddHostedService<ServerBanner>();
        return true;
    }

    public static WebApplication MapEphemeralCIServer(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseWebSockets();           // interactive sessions' terminals (eci shell)
        app.MapDefaultEndpoints();
        app.MapOpenApi();              // /openapi/v1.json
        app.MapScalarApiReference();   // /scalar
        app.MapIntake();
        app.MapSecretsBroker();
        app.MapCache();
        app.MapProvisioner();
        app.MapGitHubActions();
        return app;
    }

    private static Dictionary<string, string?> EmbeddedDefaults(IConfiguration configuration, ServerDataDirectory data)
    {
        var defaults = new Dictionary<string, string?>
        {
            ["Provisioner:LocalSandbox:WorkRoot"] = Path.Combine(data.Root, "runners"),
            ["Cache:SpoolDirectory"] = Path.Combine(data.Root, "cache-spool"),
            // The cache's bare git mirrors (used when Checkout:Enabled is on).
            ["Checkout:MirrorRoot"] = Path.Combine(data.Root, "git-mirrors"),
            ["RunnerTemplates:Directory"] = Path.Combine(AppContext.BaseDirectory, "runner-templates"),
            // /metrics for Prometheus: the server listens on loopback by default (docs/telemetry.md).
            [Microsoft.Extensions.Hosting.Extensions.PrometheusEnabledKey] = "true",
        };
        // The runner agent reaches this very process through the sandbox's Unix sockets.
        var self = SelfUrl(configuration["urls"] ?? DefaultUrl);
        foreach (var key in RelayTargetKeys) defaults[key] = self;
        if (string.IsNullOrWhiteSpace(configuration.GetConnectionString(CacheExtensions.S3ConnectionName)))
        {
            defaults["Cache:FileSystemRoot"] = Path.Combine(data.Root, "cache");
        }
        if (string.IsNullOrWhiteSpace(configuration["JobTokens:SigningKey"]))
        {
            defaults["JobTokens:SigningKey"] = data.ReadOrCreateKey("job-token-signing-key");
        }
        // The key-encryption key lives in keys/, apart from secretsdb.db, readable by this user only.
        // Production: give SecretsBroker:KeyEncryptionKeys from a secret store instead (docs/deploy.md).
        if (!configuration.GetSection("SecretsBroker:KeyEncryptionKeys").GetChildren().Any())
        {
            defaults["SecretsBroker:KeyEncryptionKeys:embedded"] = data.ReadOrCreateKey("secrets-kek");
            defaults["SecretsBroker:ActiveKeyId"] = "embedded";
        }
        // One operator token for the secrets, cache and provisioner admin APIs (the services keep one each).
        var (adminHash, createdNow) = data.ReadOrCreateCredentialHash("admin-token",
            () => "ecia_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_'));
        if (createdNow is not null)
        {
            // Shown the moment its hash is stored: a start that fails later must not lose it for good.
            // Straight to stdout, never through ILogger (logs are shipped and kept).
            Console.WriteLine("EphemeralCI server: an admin token for secrets, cache and provisioner was created (eci config set --secrets-token - / --cache-token -).");
            Console.WriteLine($"It is shown only this once:{Environment.NewLine}{createdNow}");
        }
        if (string.IsNullOrWhiteSpace(configuration["SecretsBroker:AdminToken"]) && string.IsNullOrWhiteSpace(configuration["SecretsBroker:AdminTokenSha256"]))
        {
            defaults["SecretsBroker:AdminTokenSha256"] = adminHash;
        }
        if (string.IsNullOrWhiteSpace(configuration["Cache:AdminToken"]) && string.IsNullOrWhiteSpace(configuration["Cache:AdminTokenSha256"]))
        {
            defaults["Cache:AdminTokenSha256"] = adminHash;
        }
        if (string.IsNullOrWhiteSpace(configuration["Provisioner:AdminToken"]) && string.IsNullOrWhiteSpace(configuration["Provisioner:AdminTokenSha256"]))
        {
            defaults["Provisioner:AdminTokenSha256"] = adminHash;
        }
        // Encrypts the intake's data-protection key ring (sign-in cookies, sealed job-spec values) in intakedb.
        if (string.IsNullOrWhiteSpace(configuration["Intake:DataProtection:KeyEncryptionKey"]))
        {
            defaults["Intake:DataProtection:KeyEncryptionKey"] = data.ReadOrCreateKey("intake-data-protection-kek");
        }
        // Signed cache URLs stay valid across a restart.
        if (string.IsNullOrWhiteSpace(configuration["Cache:UrlSigningKey"]))
        {
            defaults["Cache:UrlSigningKey"] = data.ReadOrCreateKey("cache-url-signing-key");
        }
        return defaults;
    }

    /// <summary>Where the provisioner relays a sandbox's intake, secrets and cache sockets: all this process.</summary>
    internal static readonly string[] RelayTargetKeys = ["Provisioner:IntakeUrl", "Provisioner:SecretsBrokerUrl", "Provisioner:CacheUrl"];

    /// <summary>The first configured URL as this machine reaches it (a wildcard host means loopback).</summary>
    internal static string SelfUrl(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault(u => u.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) ?? DefaultUrl;
        var hostStart = first.IndexOf("://", StringComparison.Ordinal) + 3;
        var portStart = first.LastIndexOf(':');
        var host = portStart > hostStart ? first[hostStart..portStart] : first[hostStart..].TrimEnd('/');
        var rest = portStart > hostStart ? first[portStart..].TrimEnd('/') : "";
        if (host is "*" or "+" or "0.0.0.0" or "[::]" or "localhost") host = "127.0.0.1";
        return $"http://{host}{rest}";
    }
}
