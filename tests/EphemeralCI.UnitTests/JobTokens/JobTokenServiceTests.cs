using System.Security.Cryptography;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit;

namespace EphemeralCI.UnitTests.JobTokens;

/// <summary>
/// Validation, including the memo of tokens that already validated: remembering one must never let through
/// what a full check would refuse for longer than <see cref="JobTokenService.ValidatedLifetime"/>.
/// </summary>
public sealed class JobTokenServiceTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly IOptions<JobTokenOptions> _options = Options.Create(new JobTokenOptions { SigningKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) });

    [Fact]
    public async Task A_token_validates_again_with_the_same_claims()
    {
        var tokens = new JobTokenService(_options, _clock);
        var jobId = Guid.NewGuid();
        var token = tokens.Issue(jobId, "acme/widgets", "refs/heads/main", _clock.GetUtcNow().AddHours(1));

        var first = await tokens.ValidateAsync(token);
        var second = await tokens.ValidateAsync(token);

        Assert.NotNull(first);
        Assert.Equal(first, second);
        Assert.Equal(jobId, second!.JobId);
        Assert.Equal("acme/widgets", second.Repository);
    }

    [Fact]
    public async Task A_remembered_token_is_refused_once_it_expires()
    {
        var tokens = new JobTokenService(_options, _clock);
        // Expires 30 s from now (deadline + the 2 min margin), well inside the memo's lifetime.
        var token = tokens.Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", _clock.GetUtcNow().AddSeconds(30) - _options.Value.ExpiryMargin);
        Assert.NotNull(await tokens.ValidateAsync(token));

        _clock.Advance(TimeSpan.FromSeconds(40));

        Assert.Null(await tokens.ValidateAsync(token));
    }

    [Fact]
    public async Task A_tampered_copy_of_a_remembered_token_is_refused()
    {
        var tokens = new JobTokenService(_options, _clock);
        var token = tokens.Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", _clock.GetUtcNow().AddHours(1));
        Assert.NotNull(await tokens.ValidateAsync(token));
        var parts = token.Split('.');
        // Another repository in the payload, the original signature.
        var forged = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["repository"] = "acme/other", ["job_id"] = Guid.NewGuid().ToString() },
        }).Split('.')[1];

        Assert.Null(await tokens.ValidateAsync($"{parts[0]}.{forged}.{parts[2]}"));
        Assert.Null(await tokens.ValidateAsync(token[..^2] + (token[^2] == 'A' ? "B" : "A") + token[^1]));
    }

    [Fact]
    public async Task A_withdrawn_signing_key_stops_admitting_its_tokens_within_the_memo_lifetime()
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var key = new ECDsaSecurityKey(ecdsa) { KeyId = "k1" };
        var keys = new SwitchableKeys(key);
        var tokens = new JobTokenService(_options, _clock, keys);
        var token = new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _options.Value.Issuer,
            Audience = _options.Value.Audience,
            NotBefore = _clock.GetUtcNow().UtcDateTime.AddSeconds(-5),
            Expires = _clock.GetUtcNow().UtcDateTime.AddHours(1),
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
            Claims = new Dictionary<string, object>
            {
                [JobTokenClaims.JobIdClaim] = Guid.NewGuid().ToString(),
                [JobTokenClaims.RepositoryClaim] = "acme/widgets",
                [JobTokenClaims.RefClaim] = "refs/heads/main",
            },
        });
        Assert.NotNull(await tokens.ValidateAsync(token));

        keys.Current = [];
        _clock.Advance(JobTokenService.ValidatedLifetime + TimeSpan.FromSeconds(1));

        Assert.Null(await tokens.ValidateAsync(token));
    }

    private sealed class SwitchableKeys(SecurityKey key) : IJobTokenKeySource
    {
        public IReadOnlyList<SecurityKey> Current { get; set; } = [key];

        public ValueTask<IReadOnlyList<SecurityKey>> GetKeysAsync(string? kid, CancellationToken cancellationToken = default) => ValueTask.FromResult(Current);
    }
}
