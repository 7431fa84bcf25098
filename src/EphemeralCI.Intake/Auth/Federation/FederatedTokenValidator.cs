using System.Collections.Concurrent;
using System.Security.Claims;
using EphemeralCI.Intake.Validation;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.Intake.Auth.Federation;

/// <summary>A federated token that a trust policy admitted: the identity it vouches for.</summary>
public sealed record FederatedIdentity(TrustPolicy Policy, VerifiedJobIdentity Identity);

/// <summary>The outcome of checking a federated token: an identity, or why not (safe to tell the client).</summary>
public sealed record FederatedValidation(FederatedIdentity? Admitted, string? Failure);

/// <summary>
/// Checks a CI system's OIDC token against the operator's trust policies. Microsoft.IdentityModel does the
/// cryptography and the protocol: one <see cref="ConfigurationManager{T}"/> per issuer reads discovery and the
/// JWKS, caches them and refreshes when a token names a key it does not know (JsonWebTokenHandler asks it to);
/// <see cref="JsonWebTokenHandler"/> checks signature, <c>iss</c>, <c>aud</c>, <c>exp</c> and <c>nbf</c> with an
/// allow-list of asymmetric algorithms (no <c>none</c>, no HMAC keyed with a public key). This class adds only
/// what a policy says: how claims become repository, ref and commit, and which claims must hold.
/// </summary>
public sealed class FederatedTokenValidator(
    IOptionsMonitor<IntakeOptions> options, IHttpClientFactory httpClients, TimeProvider clock, ILogger<FederatedTokenValidator> logger)
{
    public const string HttpClientName = "eci-oidc-discovery";

    /// <summary>Asymmetric signatures only: a JWKS holds public keys, so any HMAC algorithm would be a key-confusion attempt.</summary>
    public static readonly IReadOnlyList<string> AllowedAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    private static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly ConcurrentDictionary<string, ConfigurationManager<OpenIdConnectConfiguration>> _configurations = new(StringComparer.Ordinal);

    public bool IsConfigured => options.CurrentValue.TrustPolicies.Count > 0;

    public async Task<FederatedValidation> ValidateAsync(string token, CancellationToken ct)
    {
        string issuer;
        try
        {
            issuer = _handler.ReadJsonWebToken(token).Issuer;
        }
        catch (ArgumentException)
        {
            return new(null, "The bearer token is neither an API key nor a JWT.");
        }
        var policies = options.CurrentValue.TrustPolicies.Where(p => string.Equals(p.Issuer, issuer, StringComparison.Ordinal)).ToList();
        if (policies.Count == 0) return new(null, $"No trust policy accepts tokens from issuer '{Shorten(issuer)}'.");

        string? failure = null;
        foreach (var policy in policies)
        {
            if (policy.Problem() is { } problem)
            {
                logger.LogError("Trust policy {Policy} is not usable: {Problem}", policy.Name, problem);
                failure ??= $"Trust policy '{policy.Name}' is misconfigured.";
                continue;
            }
            var result = await _handler.ValidateTokenAsync(token, Parameters(policy));
            if (!result.IsValid && result.Exception is SecurityTokenSignatureKeyNotFoundException && TryStartOver(policy))
            {
                // The issuer rotated: read discovery and the JWKS again before deciding.
                result = await _handler.ValidateTokenAsync(token, Parameters(policy));
            }
            if (!result.IsValid)
            {
                failure = Describe(result.Exception);
                logger.LogInformation("Trust policy {Policy} refused a token: {Reason}", policy.Name, result.Exception?.Message);
                continue;
            }
            var admitted = Admit(policy, result.ClaimsIdentity, out var why);
            if (admitted is not null) return new(admitted, null);
            failure = why;
        }
        return new(null, failure ?? "The identity token was not accepted.");
    }

    private TokenValidationParameters Parameters(TrustPolicy policy) => new()
    {
        ValidIssuer = policy.Issuer,
        ValidAudience = policy.Audience,
        ValidAlgorithms = AllowedAlgorithms,
        ConfigurationManager = ConfigurationFor(policy),
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        ValidateLifetime = true,
        ClockSkew = ClockSkew,
        LifetimeValidator = (notBefore, expires, _, p) =>
        {
            var now = clock.GetUtcNow().UtcDateTime;
            return expires is { } e && e > now - p.ClockSkew && (notBefore is null || notBefore <= now + p.ClockSkew);
        },
    };

    private static string MetadataAddressOf(TrustPolicy policy) => policy.MetadataAddress ?? policy.Issuer.TrimEnd('/') + "/.well-known/openid-configuration";

    /// <summary>
    /// A token names a key we do not know. ConfigurationManager's own RequestRefresh fetches in the background
    /// (the request that noticed would still fail), so we start a new manager, whose first read waits for the
    /// issuer — at most once per <see cref="FederationOptions.KeyRefreshInterval"/> per issuer, so a flood of
    /// made-up kids cannot become a flood of requests to the issuer.
    /// </summary>
    private bool TryStartOver(TrustPolicy policy)
    {
        var address = MetadataAddressOf(policy);
        var now = clock.GetUtcNow();
        lock (_startedOver)
        {
            if (_startedOver.TryGetValue(address, out var last) && now - last < options.CurrentValue.Federation.KeyRefreshInterval) return false;
            _startedOver[address] = now;
        }
        _configurations.TryRemove(address, out _);
        return true;
    }

    private readonly Dictionary<string, DateTimeOffset> _startedOver = new(StringComparer.Ordinal);

    private ConfigurationManager<OpenIdConnectConfiguration> ConfigurationFor(TrustPolicy policy)
    {
        var address = MetadataAddressOf(policy);
        return _configurations.GetOrAdd(address, a =>
        {
            var uri = new Uri(a);
            var retriever = new HttpDocumentRetriever(httpClients.CreateClient(HttpClientName))
            {
                RequireHttps = !(uri.Scheme == "http" && uri.IsLoopback),
            };
            return new ConfigurationManager<OpenIdConnectConfiguration>(a, new OpenIdConnectConfigurationRetriever(), retriever)
            {
                RefreshInterval = options.CurrentValue.Federation.KeyRefreshInterval,
            };
        });
    }

    /// <summary>The policy's part after the signature: claims → identity, conditions, globs.</summary>
    internal static FederatedIdentity? Admit(TrustPolicy policy, ClaimsIdentity claims, out string? failure)
    {
        var map = TrustPolicyClaimMap.For(policy);
        string? One(string name) => claims.FindAll(name).Select(c => c.Value).SingleOrDefault();

        var repository = One(map.RepositoryClaim);
        var gitRef = One(map.RefClaim);
        if (map.RefTypeClaim is { } refTypeClaim && gitRef is not null)
        {
            gitRef = One(refTypeClaim) switch
            {
                "branch" => "refs/heads/" + gitRef,
                "tag" => "refs/tags/" + gitRef,
                _ => null,
            };
        }
        var sha = One(map.CommitShaClaim)?.ToLowerInvariant();

        // Claim values become globs on the principal and columns in the database: they must be plain names.
        if (!JobSpecValidator.IsRepository(repository)) { failure = $"The token's '{map.RepositoryClaim}' claim is missing or not a repository name."; return null; }
        if (!JobSpecValidator.IsRef(gitRef)) { failure = $"The token's '{map.RefClaim}' claim is missing or not a ref."; return null; }
        if (sha is null || !(sha.Length is 40 or 64) || !sha.All(char.IsAsciiHexDigitLower)) { failure = $"The token's '{map.CommitShaClaim}' claim is missing or not a commit SHA."; return null; }

        foreach (var (claim, allowed) in policy.Conditions)
        {
            var values = claims.FindAll(claim).Select(c => c.Value).ToList();
            if (!values.Any(v => IdentityGlob.MatchesAny(allowed, v, ignoreCase: false)))
            {
                failure = $"Trust policy '{policy.Name}' requires claim '{claim}' to match {string.Join(", ", allowed)}.";
                return null;
            }
        }
        if (!IdentityGlob.MatchesAny(policy.Repositories, repository, ignoreCase: true))
        {
            failure = $"Trust policy '{policy.Name}' does not admit repository '{repository}'.";
            return null;
        }
        if (policy.Refs.Count > 0 && !IdentityGlob.MatchesAny(policy.Refs, gitRef, ignoreCase: false))
        {
            failure = $"Trust policy '{policy.Name}' does not admit ref '{gitRef}'.";
            return null;
        }
        failure = null;
        var subject = One("sub") ?? "";
        return new FederatedIdentity(policy, new VerifiedJobIdentity(repository!, gitRef!, sha, policy.Name, subject));
    }

    private static string Describe(Exception? ex) => ex switch
    {
        SecurityTokenExpiredException => "The identity token has expired.",
        SecurityTokenNotYetValidException => "The identity token is not valid yet.",
        SecurityTokenInvalidAudienceException => "The identity token was issued for another audience.",
        SecurityTokenInvalidIssuerException => "The identity token's issuer does not match the trust policy.",
        SecurityTokenInvalidAlgorithmException => "The identity token's signing algorithm is not accepted.",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "The identity token's signature is not valid.",
        SecurityTokenNoExpirationException => "The identity token has no expiry.",
        _ when ex?.Message.Contains("IDX10500") == true || ex?.Message.Contains("IDX10504") == true => "The identity token is not signed.",
        _ => "The identity token could not be verified.",
    };

    private static string Shorten(string s) => s.Length > 100 ? s[..100] + "…" : s;
}
