using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.IntegrationTests.Infrastructure;

/// <summary>
/// A private forge over HTTPS-style smart HTTP: Kestrel on loopback in front of the real <c>git http-backend</c>
/// (upload-pack only), serving a <see cref="TestForge"/>'s repositories to requests with HTTP basic auth whose password
/// is <see cref="Token"/> — as GitHub and GitLab take a token. It counts what it refused. It is a Git LFS server too
/// (the batch API, download only, and the objects), as forges are: <see cref="AddLfsFile"/>.
/// </summary>
public sealed class TokenForge : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _refused;
    private int _served;

    private readonly TestForge _repositories;
    private int _lfsDownloads;

    private TokenForge(WebApplication app, string token, TestForge repositories) { _app = app; Token = token; _repositories = repositories; }

    private string LfsStore => Path.Combine(_repositories.Root, "lfs");

    /// <summary>LFS objects this forge has sent.</summary>
    public int LfsDownloads => _lfsDownloads;

    /// <summary>Commits <paramref name="content"/> at <paramref name="path"/> of <paramref name="repository"/> on main as an LFS pointer (object kept here); returns the commit.</summary>
    public string AddLfsFile(string repository, string path, byte[] content)
    {
        var oid = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content));
        Directory.CreateDirectory(LfsStore);
        File.WriteAllBytes(Path.Combine(LfsStore, oid), content);
        return _repositories.Commit(repository, "main", new Dictionary<string, string>
        {
            [".gitattributes"] = $"{path} filter=lfs diff=lfs merge=lfs -text\n",
            [path] = $"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {content.Length}\n",
        }, $"add {path} (LFS)");
    }

    public string Token { get; }
    public string UrlTemplate => _app.Urls.First() + "/{repository}.git";
    public int Refused => _refused;
    public int Served => _served;

    public static async Task<TokenForge> StartAsync(TestForge repositories, string token)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var forge = new TokenForge(app, token, repositories);
        app.Run(async http =>
        {
            if (!forge.Authorized(http.Request.Headers.Authorization.ToString()))
            {
                Interlocked.Increment(ref forge._refused);
                http.Response.StatusCode = 401;
                http.Response.Headers.WWWAuthenticate = "Basic realm=\"test forge\"";
                return;
            }
            Interlocked.Increment(ref forge._served);
            var path = http.Request.Path.Value ?? "";
            if (path.EndsWith("/info/lfs/objects/batch", StringComparison.Ordinal)) await forge.LfsBatchAsync(http);
            else if (path.StartsWith("/lfs-objects/", StringComparison.Ordinal)) await forge.LfsObjectAsync(http, path["/lfs-objects/".Length..]);
            else await HttpBackendAsync(repositories.Repositories, http);
        });
        await app.StartAsync();
        return forge;
    }

    private bool Authorized(string header)
    {
        if (!header.StartsWith("Basic ", StringComparison.Ordinal)) return false;
        try
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            return pair.Length > pair.IndexOf(':') + 1 && pair[(pair.IndexOf(':') + 1)..] == Token;
        }
        catch (FormatException) { return false; }
    }

    /// <summary>The LFS batch API (download): every object it has, with a download action back to this forge.</summary>
    private async Task LfsBatchAsync(HttpContext http)
    {
        var request = await System.Text.Json.JsonDocument.ParseAsync(http.Request.Body);
        var objects = request.RootElement.GetProperty("objects").EnumerateArray().Select(o =>
        {
            var oid = o.GetProperty("oid").GetString()!;
            var size = o.GetProperty("size").GetInt64();
            return File.Exists(Path.Combine(LfsStore, oid))
                ? (object)new { oid, size, authenticated = true, actions = new { download = new { href = $"{_app.Urls.First()}/lfs-objects/{oid}", expires_in = 3600 } } }
                : new { oid, size, error = new { code = 404, message = "Object does not exist" } };
        }).ToList();
        http.Response.ContentType = "application/vnd.git-lfs+json";
        await http.Response.WriteAsJsonAsync(new { transfer = "basic", objects });
    }

    private async Task LfsObjectAsync(HttpContext http, string oid)
    {
        var file = Path.Combine(LfsStore, Path.GetFileName(oid));
        if (!File.Exists(file)) { http.Response.StatusCode = 404; return; }
        Interlocked.Increment(ref _lfsDownloads);
        await http.Response.SendFileAsync(file);
    }

    /// <summary>git http-backend as a CGI, whole response buffered (test sizes).</summary>
    private static async Task HttpBackendAsync(string root, HttpContext http)
    {
        var psi = new ProcessStartInfo("git") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("http-backend");
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        psi.Environment["GIT_PROJECT_ROOT"] = root;
        psi.Environment["GIT_HTTP_EXPORT_ALL"] = "1";
        psi.Environment["PATH_INFO"] = http.Request.Path.Value;
        psi.Environment["REQUEST_METHOD"] = http.Request.Method;
        psi.Environment["QUERY_STRING"] = http.Request.QueryString.HasValue ? http.Request.QueryString.Value![1..] : "";
        psi.Environment["REMOTE_ADDR"] = "127.0.0.1";
        psi.Environment["REMOTE_USER"] = "forge-user";
        if (http.Request.ContentType is { } type) psi.Environment["CONTENT_TYPE"] = type;
        if (http.Request.Headers.ContentEncoding.ToString() is { Length: > 0 } encoding) psi.Environment["HTTP_CONTENT_ENCODING"] = encoding;
        if (http.Request.Headers["Git-Protocol"].ToString() is { Length: > 0 } protocol) psi.Environment["GIT_PROTOCOL"] = protocol;
        var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body);
        psi.Environment["CONTENT_LENGTH"] = body.Length.ToString();
        using var process = Process.Start(psi)!;
        var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.BaseStream.WriteAsync(body.ToArray());
        process.StandardInput.Close();
        await copy;
        await process.WaitForExitAsync();
        var output = stdout.ToArray();
        var end = output.AsSpan().IndexOf("\r\n\r\n"u8);
        var separator = 4;
        if (end < 0) { end = output.AsSpan().IndexOf("\n\n"u8); separator = 2; }
        if (end < 0) { http.Response.StatusCode = 502; return; }
        foreach (var line in Encoding.ASCII.GetString(output, 0, end).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var (key, value) = (line[..colon].Trim(), line[(colon + 1)..].Trim());
            if (key.Equals("Status", StringComparison.OrdinalIgnoreCase)) http.Response.StatusCode = int.Parse(value.Split(' ')[0]);
            else if (!key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) http.Response.Headers.Append(key, value);
        }
        await http.Response.Body.WriteAsync(output.AsMemory(end + separator));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>
/// A private forge over SSH: the real OpenSSH server (<c>/usr/sbin/sshd</c>, Debian's openssh-server) on a loopback
/// port, one authorized deploy key forced into <c>git-shell</c>, serving a <see cref="TestForge"/>'s repositories.
/// Needs root (sshd switches to the key's user); the tests run as root here and in CI.
/// </summary>
public sealed class SshForge : IAsyncDisposable
{
    private readonly Process _sshd;
    private readonly string _folder;
    private readonly StringBuilder _log = new();

    private SshForge(Process sshd, string folder, int port, string repositoriesRoot)
    {
        _sshd = sshd;
        _folder = folder;
        Port = port;
        UrlTemplate = $"ssh://root@127.0.0.1:{port}{repositoriesRoot}/{{repository}}.git";
        DeployKey = File.ReadAllText(Path.Combine(folder, "deploy_key"));
        KnownHosts = $"[127.0.0.1]:{port} " + File.ReadAllText(Path.Combine(folder, "host_key.pub")).Trim();
    }

    public int Port { get; }
    public string UrlTemplate { get; }
    /// <summary>The deploy key's private half (OpenSSH armour).</summary>
    public string DeployKey { get; }
    /// <summary>The server's host key, as a known_hosts line.</summary>
    public string KnownHosts { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    public static async Task<SshForge> StartAsync(TestForge repositories)
    {
        var folder = Path.Combine(Path.GetTempPath(), "eci-ssh-forge-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", Path.Combine(folder, "host_key"));
        Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", Path.Combine(folder, "deploy_key"));
        var deployPublic = File.ReadAllText(Path.Combine(folder, "deploy_key.pub")).Trim();
        File.WriteAllText(Path.Combine(folder, "authorized_keys"), $"restrict,command=\"git-shell -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {deployPublic}\n");
        var port = FreePort.Next();
        File.WriteAllText(Path.Combine(folder, "sshd_config"), $"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {Path.Combine(folder, "host_key")}
            PidFile {Path.Combine(folder, "sshd.pid")}
            AuthorizedKeysFile {Path.Combine(folder, "authorized_keys")}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            LogLevel VERBOSE
            """);
        Directory.CreateDirectory("/run/sshd"); // privilege separation directory sshd insists on
        var psi = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in (string[])["-D", "-e", "-f", Path.Combine(folder, "sshd_config")]) psi.ArgumentList.Add(a);
        var sshd = Process.Start(psi)!;
        var forge = new SshForge(sshd, folder, port, repositories.Repositories);
        sshd.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (forge._log) forge._log.AppendLine(e.Data); };
        sshd.OutputDataReceived += (_, _) => { };
        sshd.BeginErrorReadLine();
        sshd.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return forge;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !sshd.HasExited)
            {
                await Task.Delay(50);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException("sshd did not start: " + forge.Log);
            }
        }
    }

    private static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} failed: {error}");
    }

    public async ValueTask DisposeAsync()
    {
        try { _sshd.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        await _sshd.WaitForExitAsync();
        _sshd.Dispose();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }
}
