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
    public async Task A_retried_jobs_token_carries_its_attempt_and_a_first_attempts_token_does_not_say_one()
    {
        var tokens = new JobTokenService(_options, _clock);
        var jobId = Guid.NewGuid();
        var first = tokens.Issue(jobId, "acme/widgets", "refs/heads/main", _clock.GetUtcNow().AddHours(1));
        var second = tokens.Issue(jobId, "acme/widgets", "refs/heads/main", _clock.GetUtcNow().AddHours(1), attempt: 2);
        Assert.Equal(1, (await tokens.ValidateAsync(first))!.Attempt);
        Assert.Equal(2, (await tokens.ValidateAsync(second))!.Attempt);
        Assert.DoesNotContain(JobTokenClaims.AttemptClaim, new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(first).Claims.Select(c => c.Type));

        // Revocation is per attempt: the lost runner's mark does not reach the new attempt's token.
        var revoked = new InProcessJobRevocationList(_clock);
        await revoked.RevokeAsync(jobId, 1, TimeSpan.FromHours(1));
        Assert.True(await revoked.IsRevokedAsync(jobId, 1));
        Assert.False(await revoked.IsRevokedAsync(jobId, 2));
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
