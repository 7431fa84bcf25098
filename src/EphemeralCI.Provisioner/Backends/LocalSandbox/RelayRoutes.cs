using System.Text.RegularExpressions;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// The runner routes each control-plane socket of a sandbox lets through, and nothing else: a job
/// reaches the intake, secrets broker and cache only as a runner does. API keys, job-token minting,
/// admin, OpenAPI, health and any route added later are answered 403 by the gateway
/// (<see cref="ControlPlaneGateway"/>) and never reach the service.
/// </summary>
public static partial class RelayRoutes
{
    public const string IntakeSocketName = "intake.sock";

    /// <summary>One allowed request: an HTTP method and a whole (decoded, dot-segment-free) path.</summary>
    public sealed record Route(string Method, Regex Path);

    private static Route[] Routes(string methods, Regex path) => [.. methods.Split(',').Select(m => new Route(m, path))];

    private static readonly IReadOnlyList<Route> Intake =
    [
        new("GET", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Job)),
        new("POST", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Logs)),
        new("POST", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Events)),
        new("POST", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.CacheEvents)),
        new("POST", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Complete)),
        // A session's agent asks for its next command (only a session's job answers it).
        new("GET", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Commands)),
        // An interactive session's agent opens its terminal (a WebSocket upgrade of a GET).
        new("GET", Exact(EphemeralCI.Contracts.Runner.RunnerApiRoutes.Terminal)),
    ];

    private static readonly IReadOnlyList<Route> Secrets = [new("POST", Exact("/api/v1/secrets/exchange"))];

    private static readonly IReadOnlyList<Route> Cache =
    [
        // GitHub Actions cache v2 (Twirp) and v1, as the agent and @actions/cache speak them.
        new("POST", TwirpCache()),
        new("GET", Exact("/_apis/artifactcache/cache")),
        .. Routes("GET,POST", Exact("/_apis/artifactcache/caches")),
        .. Routes("PATCH,POST", ActionsV1Entry()),
        // Archive bytes, through the signed URLs the calls above hand out.
        .. Routes("GET,HEAD,PUT", Blob()),
        // The build cache (Bazel, ccache, Gradle): /cache/ac|cas/{sha256}.
        .. Routes("GET,HEAD,PUT", BuildCacheEntry()),
        // Checkout from the job repository's mirror: git smart HTTP, upload-pack only (never receive-pack, never /git/verify).
        new("GET", GitInfoRefs()),
        new("POST", GitUploadPack()),
        // Git LFS from the mirror: the batch API (the cache accepts downloads only) and the objects.
        new("POST", GitLfsBatch()),
        new("GET", GitLfsObject()),
    ];

    /// <summary>The allowed routes of a socket (by its file name in the job's control directory); none for an unknown one.</summary>
    public static IReadOnlyList<Route> For(string socketName) => socketName switch
    {
        IntakeSocketName => Intake,
        SandboxCommandBuilder.SecretsSocketName => Secrets,
        SandboxCommandBuilder.CacheSocketName => Cache,
        _ => [],
    };

    public static bool Allows(string socketName, string method, string path) =>
        For(socketName).Any(r => string.Equals(r.Method, method, StringComparison.OrdinalIgnoreCase) && r.Path.IsMatch(path));

    private static Regex Exact(string path) => new("^" + Regex.Escape(path) + "$", RegexOptions.CultureInvariant);

    [GeneratedRegex("^/twirp/github\\.actions\\.results\\.api\\.v1\\.CacheService/(CreateCacheEntry|FinalizeCacheEntryUpload|GetCacheEntryDownloadURL)$", RegexOptions.CultureInvariant)]
    private static partial Regex TwirpCache();

    [GeneratedRegex("^/_apis/artifactcache/caches/[0-9]{1,19}$", RegexOptions.CultureInvariant)]
    private static partial Regex ActionsV1Entry();

    [GeneratedRegex("^/cache/blobs/[0-9]{1,19}$", RegexOptions.CultureInvariant)]
    private static partial Regex Blob();

    [GeneratedRegex("^/cache/(ac|cas)/[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex BuildCacheEntry();

    [GeneratedRegex("^/git/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}\\.git/info/refs$", RegexOptions.CultureInvariant)]
    private static partial Regex GitInfoRefs();

    [GeneratedRegex("^/git/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}\\.git/git-upload-pack$", RegexOptions.CultureInvariant)]
    private static partial Regex GitUploadPack();

    [GeneratedRegex("^/git/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}\\.git/info/lfs/objects/batch$", RegexOptions.CultureInvariant)]
    private static partial Regex GitLfsBatch();

    [GeneratedRegex("^/git/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}\\.git/lfs/objects/[0-9a-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex GitLfsObject();
}
