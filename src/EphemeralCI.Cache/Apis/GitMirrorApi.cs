using System.Diagnostics;
using System.Text;
using EphemeralCI.Cache.Git;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// The git side of the cache, every route behind the job token:
/// <list type="bullet">
/// <item><c>POST /git/verify</c>: fetch the token's repository into its mirror and check the token's commit is on its ref
/// (the provisioner calls it before a runner exists);</item>
/// <item><c>GET /git/{owner}/{name}.git/info/refs?service=git-upload-pack</c> and <c>POST …/git-upload-pack</c>: git's
/// smart HTTP protocol, served by <c>git http-backend</c> from the mirror, for the token's repository only, so a runner
/// clones (shallow, partial) without ever reaching the forge. Receive-pack has no route: nothing a job does writes a mirror.</item>
/// </list>
/// </summary>
public static class GitMirrorApi
{
    public const string UploadPackService = "git-upload-pack";

    public static RouteGroupBuilder MapGitMirrorApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/git")
            .WithTags("GitMirrors")
            .AddEndpointFilter<JobTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status404NotFound);

        api.MapPost("/verify", VerifyAsync)
            .WithName("VerifyJobCommit")
            .WithSummary("Fetch the job's repository into its mirror and check its commit exists and is on its ref")
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status502BadGateway);

        api.MapGet("/{owner}/{name}.git/info/refs", InfoRefsAsync)
            .WithName("GitInfoRefs")
            .WithSummary("git smart HTTP: the mirror's refs (upload-pack only)")
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapPost("/{owner}/{name}.git/git-upload-pack", UploadPackAsync)
            .WithName("GitUploadPack")
            .WithSummary("git smart HTTP: a pack of the mirror for the job's repository")
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapPost("/{owner}/{name}.git/info/lfs/objects/batch", LfsBatchAsync)
            .WithName("GitLfsBatch")
            .WithSummary("Git LFS batch API (download only): the objects, fetched from the forge's LFS server on first request")
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapGet("/{owner}/{name}.git/lfs/objects/{oid}", LfsObjectAsync)
            .WithName("GitLfsObject")
            .WithSummary("One Git LFS object of the job's repository")
            .ProducesProblem(StatusCodes.Status403Forbidden);

        return api;
    }

    /// <param name="CommitSha">The job's commit, for tokens that do not carry it (the shared-key issuer); must match the token's when it does.</param>
    public sealed record VerifyRequest(string? CommitSha);

    public sealed record VerifyResponse(string Repository, string Ref, string CommitSha, string? RefTip);

    public static async Task<Results<Ok<VerifyResponse>, ProblemHttpResult>> VerifyAsync(VerifyRequest? body, HttpContext http, GitMirrors mirrors, ILogger<GitMirrors> logger, CancellationToken ct)
    {
        if (!mirrors.Enabled) return Disabled();
        var job = http.JobToken();
        if (job.CommitSha is { Length: > 0 } claimed && body?.CommitSha is { Length: > 0 } asked && !string.Equals(claimed, asked, StringComparison.OrdinalIgnoreCase))
        {
            return CacheProblems.Invalid("commitSha", $"the job token is for commit {claimed}, not {asked}");
        }
        var commit = job.CommitSha is { Length: > 0 } ? job.CommitSha : body?.CommitSha;
        if (string.IsNullOrEmpty(commit)) return CacheProblems.Invalid("commitSha", "the job names no commit: a job of a repository with checkout on must give commitSha");
        try
        {
            var result = await mirrors.VerifyAsync(job.Repository, job.Ref, commit, ct);
            if (!result.Verified)
            {
                logger.LogWarning("Job {JobId} refused: {Reason}", job.JobId, result.Detail);
                var problem = CacheProblems.Problem(result.Field == "repository" ? 400 : StatusCodes.Status409Conflict, "Commit not verified", result.Detail, result.Field, "failed_precondition");
                return problem;
            }
            return TypedResults.Ok(new VerifyResponse(job.Repository, job.Ref, commit, result.RefTip));
        }
        catch (MirrorFetchException e)
        {
            return ForgeUnavailable(e.Message);
        }
    }

    public static Task<IResult> InfoRefsAsync(string owner, string name, HttpContext http, GitMirrors mirrors, ILogger<GitMirrors> logger, CancellationToken ct)
    {
        if (http.Request.Query["service"] != UploadPackService)
        {
            return Task.FromResult<IResult>(CacheProblems.Forbidden($"only the {UploadPackService} service is served: a mirror cannot be written through the cache"));
        }
        return ServeAsync(owner, name, "info/refs", http, mirrors, null, logger, ct);
    }

    public static Task<IResult> UploadPackAsync(string owner, string name, HttpContext http, GitMirrors mirrors, PackCache packs, ILogger<GitMirrors> logger, CancellationToken ct) =>
        ServeAsync(owner, name, UploadPackService, http, mirrors, packs, logger, ct);

    public sealed record LfsBatchRequest(string? Operation, IReadOnlyList<LfsBatchObject>? Objects);

    public sealed record LfsBatchObject(string? Oid, long Size);

    public static async Task<IResult> LfsBatchAsync(string owner, string name, LfsBatchRequest? body, HttpContext http, GitMirrors mirrors, LfsObjects lfs,
        ILogger<GitMirrors> logger, CancellationToken ct)
    {
        var (repository, _, refused) = await AuthorizeAsync(owner, name, http, mirrors, ct);
        if (refused is not null) return refused;
        if (body?.Operation != "download") return CacheProblems.Forbidden("only downloads: nothing a job does writes a mirror's LFS objects");
        if (body.Objects is not { Count: > 0 and <= LfsObjects.MaxObjectsPerBatch } objects)
        {
            return CacheProblems.Invalid("objects", $"must list 1 to {LfsObjects.MaxObjectsPerBatch} objects");
        }
        if (objects.FirstOrDefault(o => !LfsObjects.IsOid(o.Oid) || o.Size < 0) is { } bad)
        {
            return CacheProblems.Invalid("objects", $"'{bad.Oid}' is not an LFS object: a lower-case SHA-256 and a size ≥ 0");
        }
        var pointers = objects.Select(o => new LfsPointer(o.Oid!, o.Size)).ToList();
        Dictionary<string, string> failed;
        try
        {
            failed = await lfs.EnsureAsync(repository, pointers, ct);
        }
        catch (HttpRequestException e)
        {
            return ForgeUnavailable($"the forge's LFS server could not be reached: {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return ForgeUnavailable("the forge's LFS server did not answer in time");
        }
        catch (MirrorFetchException e)
        {
            // The forge credential could not be read (see ForgeCredentials).
            return ForgeUnavailable(e.Message);
        }
        foreach (var (oid, why) in failed) logger.LogWarning("LFS object {Oid} of {Repository} not served: {Reason}", oid, repository, why);
        // Downloads come back here; git-lfs sends them with the same credential (its http.extraHeader, the job token).
        var self = $"{LfsBase(http)}git/{GitMirrors.RelativePath(repository)}/lfs/objects/";
        var answer = new
        {
            transfer = "basic",
            objects = pointers.Select(p => failed.TryGetValue(p.Oid, out var why)
                ? (object)new { oid = p.Oid, size = p.Size, error = new { code = 404, message = why } }
                : new { oid = p.Oid, size = p.Size, authenticated = true, actions = new { download = new { href = self + p.Oid } } }),
        };
        return TypedResults.Json(answer, contentType: "application/vnd.git-lfs+json");
    }

    /// <summary>The runner agent names the address it reached the cache by when that is its own loopback relay.</summary>
    public const string LfsBaseHeader = "X-Eci-Lfs-Base";

    /// <summary>
    /// Where the runner reaches this cache: the address the agent's loopback relay listens on (the sandbox gateway
    /// forwards to the cache under the cache's own name, which no sandbox can reach) — accepted only as a loopback
    /// URL, so it can send the runner nowhere else — else the address the request came to.
    /// </summary>
    private static string LfsBase(HttpContext http)
    {
        var given = http.Request.Headers[LfsBaseHeader].ToString();
        if (Uri.TryCreate(given, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback && uri.PathAndQuery == "/")
        {
            return uri.ToString();
        }
        return $"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}/";
    }

    public static async Task<IResult> LfsObjectAsync(string owner, string name, string oid, HttpContext http, GitMirrors mirrors, LfsObjects lfs, CancellationToken ct)
    {
        var (repository, _, refused) = await AuthorizeAsync(owner, name, http, mirrors, ct);
        if (refused is not null) return refused;
        if (!LfsObjects.IsOid(oid)) return CacheProblems.Invalid("oid", "must be a lower-case SHA-256");
        var path = lfs.PathOf(repository, oid);
        return File.Exists(path) ? TypedResults.PhysicalFile(path, "application/octet-stream") : CacheProblems.NotFound($"LFS object {oid} is not in the mirror of {repository}: ask the batch API first");
    }

    /// <summary>
    /// The job's own repository, or a submodule its commit names (nested ones included, for `checkout: {submodules: …}`),
    /// with the commit the submodule's gitlink records (null for the job's own); the problem otherwise.
    /// </summary>
    private static async Task<(string Repository, string? Gitlink, IResult? Refused)> AuthorizeAsync(string owner, string name, HttpContext http, GitMirrors mirrors, CancellationToken ct)
    {
        if (!mirrors.Enabled) return ("", null, Disabled());
        var repository = owner + "/" + name;
        if (!GitMirrors.IsRepository(repository)) return ("", null, CacheProblems.Invalid("repository", $"'{repository}' is not an owner/name repository"));
        var job = http.JobToken();
        if (string.Equals(job.Repository, repository, StringComparison.OrdinalIgnoreCase)) return (repository, null, null);
        try
        {
            // Following nested submodules may fetch the mirrors in between: a forge that cannot be reached is a 502, not a 500.
            var submodule = job.CommitSha is { Length: > 0 } sha ? await mirrors.FindSubmoduleAsync(job.Repository, sha, repository, ct) : (false, null);
            return submodule.IsSubmodule ? (repository, submodule.Commit, null)
                : ("", null, CacheProblems.Forbidden($"this job's token is for repository {job.Repository}, not {repository} (nor is that a submodule of its commit)"));
        }
        catch (MirrorFetchException e)
        {
            return ("", null, ForgeUnavailable(e.Message));
        }
    }

    private static ProblemHttpResult ForgeUnavailable(string detail) =>
        CacheProblems.Problem(StatusCodes.Status502BadGateway, "Forge unavailable", detail, twirpCode: "unavailable");

    /// <param name="packs">For upload-pack: where packs are kept for the next runner asking the same (none for info/refs).</param>
    private static async Task<IResult> ServeAsync(string owner, string name, string service, HttpContext http, GitMirrors mirrors, PackCache? packs, ILogger logger, CancellationToken ct)
    {
        var (repository, gitlink, refused) = await AuthorizeAsync(owner, name, http, mirrors, ct);
        if (refused is not null) return refused;
        try
        {
            // A submodule's mirror may predate the commit the superproject now records.
            await mirrors.EnsureMirrorAsync(repository, gitlink, ct);
        }
        catch (MirrorFetchException e)
        {
            return ForgeUnavailable(e.Message);
        }
        await RunHttpBackendAsync(mirrors.Root, "/" + GitMirrors.RelativePath(repository).Replace('\\', '/') + "/" + service, http, packs, logger, ct);
        return TypedResults.Empty;
    }

    /// <summary>Runs <c>git http-backend</c> as a CGI for one request: the request body to its stdin, its headers and body to the response.</summary>
    private static async Task RunHttpBackendAsync(string projectRoot, string pathInfo, HttpContext http, PackCache? packs, ILogger logger, CancellationToken ct)
    {
        var request = http.Request;
        var psi = new ProcessStartInfo("git")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("http-backend");
        GitCommand.Prepare(psi, [new("http.receivepack", "false"), new("http.uploadpack", "true"), new("uploadpack.allowAnySHA1InWant", "true"), new("uploadpack.allowFilter", "true"),
            .. packs?.GitConfig() ?? []]);
        if (packs is not null) psi.Environment[PackCache.DirectoryVariable] = packs.Directory;
        psi.Environment["GIT_PROJECT_ROOT"] = projectRoot;
        psi.Environment["GIT_HTTP_EXPORT_ALL"] = "1";
        psi.Environment["PATH_INFO"] = pathInfo;
        psi.Environment["REQUEST_METHOD"] = request.Method;
        psi.Environment["QUERY_STRING"] = request.QueryString.HasValue ? request.QueryString.Value![1..] : "";
        psi.Environment["REMOTE_ADDR"] = http.Connection.RemoteIpAddress?.ToString() ?? "127.0.0.1";
        psi.Environment["GATEWAY_INTERFACE"] = "CGI/1.1";
        if (request.ContentType is { } type) psi.Environment["CONTENT_TYPE"] = type;
        if (request.ContentLength is { } length) psi.Environment["CONTENT_LENGTH"] = length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (request.Headers.ContentEncoding.ToString() is { Length: > 0 } encoding) psi.Environment["HTTP_CONTENT_ENCODING"] = encoding;
        if (request.Headers["Git-Protocol"].ToString() is { Length: > 0 } protocol) psi.Environment["GIT_PROTOCOL"] = protocol;

        using var process = Process.Start(psi) ?? throw new InvalidOperationException("git http-backend did not start");
        using var kill = ct.Register(() => { try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } });
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        var input = Task.Run(async () =>
        {
            try
            {
                await request.Body.CopyToAsync(process.StandardInput.BaseStream, ct);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException) { }
            finally
            {
                try { process.StandardInput.Close(); } catch (IOException) { }
            }
        }, CancellationToken.None);

        var output = process.StandardOutput.BaseStream;
        var (status, headers, leftover) = await ReadCgiHeadersAsync(output, ct);
        http.Response.StatusCode = status;
        foreach (var (key, value) in headers)
        {
            if (key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && long.TryParse(value, out var len)) http.Response.ContentLength = len;
            else http.Response.Headers.Append(key, value);
        }
        // Packs stream: never buffer the whole response.
        http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            if (leftover.Length > 0) await http.Response.Body.WriteAsync(leftover, ct);
            await output.CopyToAsync(http.Response.Body, ct);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException) { }
        await process.WaitForExitAsync(CancellationToken.None);
        await input;
        var errors = await stderr;
        if (process.ExitCode != 0 && !ct.IsCancellationRequested)
        {
            logger.LogWarning("git http-backend for {Path} exited with {Code}: {Error}", pathInfo, process.ExitCode, errors.Trim());
        }
    }

    /// <summary>The CGI response head (up to the blank line): <c>Status:</c> and the other headers, and any body bytes read with it.</summary>
    private static async Task<(int Status, List<KeyValuePair<string, string>> Headers, ReadOnlyMemory<byte> Leftover)> ReadCgiHeadersAsync(Stream output, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        var filled = 0;
        while (true)
        {
            var end = HeadEnd(buffer.AsSpan(0, filled), out var separator);
            if (end >= 0)
            {
                var head = Encoding.ASCII.GetString(buffer, 0, end);
                var status = 200;
                var headers = new List<KeyValuePair<string, string>>();
                foreach (var line in head.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    var colon = line.IndexOf(':');
                    if (colon <= 0) continue;
                    var key = line[..colon].Trim();
                    var value = line[(colon + 1)..].Trim();
                    if (key.Equals("Status", StringComparison.OrdinalIgnoreCase))
                    {
                        _ = int.TryParse(value.Split(' ')[0], out status);
                    }
                    else headers.Add(new(key, value));
                }
                return (status, headers, buffer.AsMemory(end + separator, filled - end - separator));
            }
            if (filled == buffer.Length) return (502, [], ReadOnlyMemory<byte>.Empty);
            var read = await output.ReadAsync(buffer.AsMemory(filled), ct);
            if (read == 0) return (502, [], ReadOnlyMemory<byte>.Empty);
            filled += read;
        }
    }

    private static int HeadEnd(ReadOnlySpan<byte> data, out int separator)
    {
        var crlf = data.IndexOf("\r\n\r\n"u8);
        var lf = data.IndexOf("\n\n"u8);
        if (crlf >= 0 && (lf < 0 || crlf < lf)) { separator = 4; return crlf; }
        separator = 2;
        return lf;
    }

    private static ProblemHttpResult Disabled() =>
        CacheProblems.NotFound("This cache keeps no git mirrors: checkout is off (Checkout:Enabled).");
}
