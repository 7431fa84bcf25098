using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.IntegrationTests.Fakes.FakeOidcIssuer;

/// <summary>
/// A FAKE OIDC issuer, in process, for tests only: it stands in for GitHub Actions' or GitLab's token
/// service, which our machines cannot reach. Over real HTTP on loopback it serves what a relying party
/// reads (<c>/.well-known/openid-configuration</c> and the JWKS it names) with RSA keys of its own, and
/// mints tokens shaped like GitHub's or GitLab's, including the broken ones an attacker would send.
/// </summary>
public sealed class FakeOidcIssuer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<RsaSecurityKey> _published = [];
    private readonly Lock _gate = new();

    public string Issuer { get; }
    public RsaSecurityKey SigningKey { get; private set; }
    /// <summary>How many times a relying party fetched the JWKS (discovery caching and refresh are observable).</summary>
    public int JwksRequests;

    private FakeOidcIssuer(WebApplication app, string issuer, RsaSecurityKey key)
    {
        _app = app;
        Issuer = issuer;
        SigningKey = key;
        _published.Add(key);
    }

    public static async Task<FakeOidcIssuer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        FakeOidcIssuer? self = null;
        app.MapGet("/.well-known/openid-configuration", () => Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = self!.Issuer,
            ["jwks_uri"] = self.Issuer + "/.well-known/jwks",
            ["subject_types_supported"] = new[] { "public" },
            ["response_types_supported"] = new[] { "id_token" },
            ["id_token_signing_alg_values_supported"] = new[] { "RS256" },
        }));
        app.MapGet("/.well-known/jwks", () =>
        {
            Interlocked.Increment(ref self!.JwksRequests);
            lock (self._gate)
            {
                var keys = self._published.Select(k =>
                {
                    var jwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(k.Rsa.ExportParameters(false)) { KeyId = k.KeyId });
                    return new Dictionary<string, object> { ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = jwk.Kid, ["n"] = jwk.N, ["e"] = jwk.E };
                }).ToList();
                return Results.Json(new { keys });
            }
        });
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().TrimEnd('/');
        self = new FakeOidcIssuer(app, url, NewKey());
        return self;
    }

    public static RsaSecurityKey NewKey() => new(RSA.Create(2048)) { KeyId = Guid.NewGuid().ToString("N")[..16] };

    /// <summary>Signs with a new key from now on and publishes it beside the old one (what an issuer does when it rotates).</summary>
    public RsaSecurityKey Rotate()
    {
        lock (_gate)
        {
            SigningKey = NewKey();
            _published.Add(SigningKey);
            return SigningKey;
        }
    }

    /// <summary>Claims of a GitHub Actions token for a push to <paramref name="gitRef"/> of <paramref name="repository"/>.</summary>
    public static Dictionary<string, object> GitHubClaims(string repository, string gitRef, string sha) => new()
    {
        ["sub"] = $"repo:{repository}:ref:{gitRef}",
        ["repository"] = repository,
        ["repository_owner"] = repository.Split('/')[0],
        ["ref"] = gitRef,
        ["sha"] = sha,
        ["event_name"] = "push",
        ["ref_protected"] = "true",
    };

    /// <summary>Claims of a GitLab CI id_token for a branch pipeline.</summary>
    public static Dictionary<string, object> GitLabClaims(string projectPath, string branch, string sha) => new()
    {
        ["sub"] = $"project_path:{projectPath}:ref_type:branch:ref:{branch}",
        ["project_path"] = projectPath,
        ["namespace_path"] = projectPath.Split('/')[0],
        ["ref"] = branch,
        ["ref_type"] = "branch",
        ["sha"] = sha,
    };

    /// <summary>A signed token; every part can be made wrong on purpose.</summary>
    public string Mint(Dictionary<string, object> claims, string audience, TimeSpan? lifetime = null, DateTimeOffset? notBefore = null,
        string? issuer = null, SecurityKey? key = null, string algorithm = SecurityAlgorithms.RsaSha256)
    {
        var now = DateTimeOffset.UtcNow;
        var expires = now + (lifetime ?? TimeSpan.FromMinutes(5));
        var nbf = notBefore ?? now.AddSeconds(-10);
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer ?? Issuer,
            Audience = audience,
            IssuedAt = (nbf < expires ? nbf : expires.AddMinutes(-1)).UtcDateTime,
            NotBefore = (nbf < expires ? nbf : expires.AddMinutes(-1)).UtcDateTime,
            Expires = expires.UtcDateTime,
            Claims = claims,
            SigningCredentials = new SigningCredentials(key ?? SigningKey, algorithm),
        });
    }

    /// <summary>The same claims with <c>alg: none</c> and no signature.</summary>
    public string MintUnsigned(Dictionary<string, object> claims, string audience)
    {
        var now = DateTimeOffset.UtcNow;
        var payload = new Dictionary<string, object>(claims)
        {
            ["iss"] = Issuer, ["aud"] = audience, ["iat"] = now.ToUnixTimeSeconds(), ["nbf"] = now.AddSeconds(-10).ToUnixTimeSeconds(),
            ["exp"] = now.AddMinutes(5).ToUnixTimeSeconds(),
        };
        static string B64(string json) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(json));
        return B64($$"""{"alg":"none","typ":"JWT","kid":"{{SigningKey.KeyId}}"}""") + "." + B64(System.Text.Json.JsonSerializer.Serialize(payload)) + ".";
    }

    /// <summary>
    /// HS256 keyed with the published RSA public key's bytes: the classic confusion where a verifier that
    /// trusts the token's <c>alg</c> would check an HMAC with a key everyone has.
    /// </summary>
    public string MintHmacWithPublicKey(Dictionary<string, object> claims, string audience)
    {
        var publicKey = SigningKey.Rsa.ExportSubjectPublicKeyInfo();
        return Mint(claims, audience, key: new SymmetricSecurityKey(publicKey) { KeyId = SigningKey.KeyId }, algorithm: SecurityAlgorithms.HmacSha256);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
