using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Git;

/// <summary>
/// A credential for one fetch from the forge, used only by the control plane. It reaches git as environment-only
/// config (never argv, never the mirror's config file); dispose it when the fetch is over.
/// </summary>
public abstract class ForgeCredential : IDisposable
{
    /// <summary>The git settings that authenticate one fetch.</summary>
    public abstract IEnumerable<KeyValuePair<string, string>> GitConfig();

    /// <summary>The text with anything secret replaced, for a log or a job's timeline.</summary>
    public abstract string Redact(string text);

    /// <summary>An HTTP <c>Authorization</c> value for the forge's own HTTP APIs (its LFS server), when this credential has one.</summary>
    public virtual string? HttpAuthorization => null;

    public virtual void Dispose() { }

    public override string ToString() => $"{GetType().Name}(***)";

    /// <summary>
    /// The credential a secret's value describes: an SSH private key (PEM/OpenSSH armour) is a deploy key and needs the
    /// forge's host keys (<paramref name="knownHosts"/>); anything else is a token.
    /// </summary>
    public static ForgeCredential FromSecret(string value, string? knownHosts)
    {
        var trimmed = value.Trim();
        if (trimmed.StartsWith("-----BEGIN", StringComparison.Ordinal) && trimmed.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            if (string.IsNullOrWhiteSpace(knownHosts))
            {
                throw new MirrorFetchException($"an SSH deploy key needs the forge's host keys in '{CheckoutOptions.Section}:SshKnownHosts'");
            }
            return OperatingSystem.IsWindows() ? throw new PlatformNotSupportedException("SSH deploy keys need a Unix control plane")
                : new SshKeyCredential(trimmed, knownHosts);
        }
        return new TokenCredential(trimmed);
    }
}

/// <summary>A forge token (GitHub/GitLab style: HTTP basic with the token as password).</summary>
public sealed class TokenCredential(string token) : ForgeCredential
{
    private readonly string _basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("x-access-token:" + token));

    public override IEnumerable<KeyValuePair<string, string>> GitConfig()
    {
        yield return new("http.extraHeader", "Authorization: Basic " + _basic);
    }

    public override string Redact(string text) =>
        text.Replace(token, "***", StringComparison.Ordinal).Replace(_basic, "***", StringComparison.Ordinal);

    public override string HttpAuthorization => "Basic " + _basic;
}

/// <summary>
/// An SSH deploy key: written for the fetch's lifetime to a file only this user can read (in memory-backed
/// <c>/dev/shm</c> where there is one), used with strict host-key checking against the configured host keys and
/// no agent, no user ssh config, no prompt; deleted when disposed.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SshKeyCredential : ForgeCredential
{
    private readonly string _folder;
    private readonly string _key;
    private readonly string[] _keyLines;

    public SshKeyCredential(string privateKey, string knownHosts)
    {
        _key = privateKey;
        _keyLines = privateKey.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("-----", StringComparison.Ordinal) && l.Length >= 16).ToArray();
        var parent = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        _folder = Path.Combine(parent, "eci-forge-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Write(KeyFile, privateKey.TrimEnd() + "\n");
        Write(KnownHostsFile, knownHosts.TrimEnd() + "\n");
    }

    private string KeyFile => Path.Combine(_folder, "id");
    private string KnownHostsFile => Path.Combine(_folder, "known_hosts");

    public override IEnumerable<KeyValuePair<string, string>> GitConfig()
    {
        // -F /dev/null: no user or system ssh config can add an agent, a proxy or another identity.
        yield return new("core.sshCommand",
            $"ssh -F /dev/null -i {KeyFile} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes " +
            $"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={KnownHostsFile} -o GlobalKnownHostsFile=/dev/null");
    }

    public override string Redact(string text)
    {
        text = text.Replace(_key, "***", StringComparison.Ordinal);
        foreach (var line in _keyLines) text = text.Replace(line, "***", StringComparison.Ordinal);
        return text;
    }

    public override void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static void Write(string path, string content)
    {
        using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        file.Write(Encoding.UTF8.GetBytes(content));
    }
}

/// <summary>Where the control plane's forge credentials come from.</summary>
public interface IForgeCredentials
{
    /// <summary>The credential for fetching <paramref name="repository"/> from <paramref name="url"/>, or null (public).</summary>
    Task<ForgeCredential?> GetAsync(string repository, string url, CancellationToken ct);
}

/// <summary>
/// Forge credentials by repository: the first <c>Checkout:Repositories:{n}</c> entry matching it with a
/// <c>TokenSecret</c> or <c>Token</c>, else <c>Checkout:TokenSecret</c> / <c>Checkout:Token</c>; none for public
/// repositories. A <c>TokenSecret</c> names an operator-only secret (<c>ECI_*</c>) in the secrets broker holding a
/// token or an SSH deploy key, read for the fetch (remembered a minute, so a rotation applies within one).
/// A plain <c>Token</c> comes from the host's own secret store (environment, Kubernetes Secret).
/// </summary>
public sealed class ForgeCredentials(IOptionsMonitor<CheckoutOptions> options, IOperatorSecrets secrets, TimeProvider clock) : IForgeCredentials
{
    private static readonly TimeSpan Remember = TimeSpan.FromMinutes(1);
    private readonly Dictionary<string, (string Value, DateTimeOffset Until)> _read = new(StringComparer.Ordinal);

    public async Task<ForgeCredential?> GetAsync(string repository, string url, CancellationToken ct)
    {
        var o = options.CurrentValue;
        var entry = o.Repositories.FirstOrDefault(r => IdentityGlob.Matches(r.Match, repository, ignoreCase: true)
            && (!string.IsNullOrEmpty(r.TokenSecret) || !string.IsNullOrEmpty(r.Token)));
        var (secretName, token) = entry is not null ? (entry.TokenSecret, entry.Token) : (o.TokenSecret, o.Token);
        if (!string.IsNullOrEmpty(secretName)) return ForgeCredential.FromSecret(await ReadAsync(secretName, ct), o.SshKnownHosts);
        return string.IsNullOrEmpty(token) ? null : ForgeCredential.FromSecret(token, o.SshKnownHosts);
    }

    private async Task<string> ReadAsync(string name, CancellationToken ct)
    {
        lock (_read)
        {
            if (_read.TryGetValue(name, out var known) && known.Until > clock.GetUtcNow()) return known.Value;
        }
        string? value;
        try
        {
            value = await secrets.ReadAsync(name, ct);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            throw new MirrorFetchException($"could not read the forge credential '{name}' from the secrets broker: {e.Message}");
        }
        if (value is null) throw new MirrorFetchException($"the forge credential '{name}' does not exist in the secrets broker");
        lock (_read) _read[name] = (value, clock.GetUtcNow() + Remember);
        return value;
    }
}

/// <summary>Reads operator-only secrets (<c>ECI_*</c>) from the secrets broker.</summary>
public interface IOperatorSecrets
{
    /// <summary>The secret's current value, or null when it does not exist.</summary>
    Task<string?> ReadAsync(string name, CancellationToken ct);
}

/// <summary>
/// The broker's <c>GET /internal/v1/operator-secrets/{name}</c> on its admin listener
/// (<c>Checkout:SecretsBrokerUrl</c>), with the cache's credential (<c>Checkout:SecretsBrokerToken</c>, the broker's
/// <c>SecretsBroker:CacheToken</c>).
/// </summary>
public sealed class BrokerOperatorSecrets(HttpClient http, IOptions<CheckoutOptions> options) : IOperatorSecrets
{
    public async Task<string?> ReadAsync(string name, CancellationToken ct)
    {
        var o = options.Value;
        if (string.IsNullOrWhiteSpace(o.SecretsBrokerUrl) || string.IsNullOrWhiteSpace(o.SecretsBrokerToken))
        {
            throw new InvalidOperationException($"'{CheckoutOptions.Section}:SecretsBrokerUrl' and '{CheckoutOptions.Section}:SecretsBrokerToken' are not configured");
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(o.SecretsBrokerUrl.TrimEnd('/') + "/"), $"internal/v1/operator-secrets/{Uri.EscapeDataString(name)}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", o.SecretsBrokerToken);
        using var response = await http.SendAsync(request, ct);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return null;
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"the secrets broker answered {(int)response.StatusCode}");
        var body = await response.Content.ReadFromJsonAsync<OperatorSecretBody>(ct);
        return body?.Value ?? throw new InvalidOperationException("the secrets broker sent no value");
    }

    private sealed record OperatorSecretBody(string Name, int Version, string Value);
}
