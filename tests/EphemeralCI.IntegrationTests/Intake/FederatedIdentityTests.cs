using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.IntegrationTests.Fakes.FakeOidcIssuer;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.IdentityModel.Tokens;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>The intake trusting a (fake) CI issuer's OIDC tokens through two trust policies: GitHub-shaped and GitLab-shaped claims.</summary>
public sealed class FederatedIntakeFactory : IntakeFactory
{
    public const string Audience = "https://eci.test";
    public const string GitLabAudience = "https://eci.test/gitlab";

    public FakeOidcIssuer Issuer { get; private set; } = null!;
    /// <summary>An issuer no trust policy names.</summary>
    public FakeOidcIssuer Stranger { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        Issuer = await FakeOidcIssuer.StartAsync();
        Stranger = await FakeOidcIssuer.StartAsync();
        await base.InitializeAsync();
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        const string github = "Intake:TrustPolicies:0:";
        builder.UseSetting(github + "Name", "github-acme");
        builder.UseSetting(github + "Issuer", Issuer.Issuer);
        builder.UseSetting(github + "Audience", Audience);
        builder.UseSetting(github + "Claims", "github");
        builder.UseSetting(github + "Repositories:0", "acme/*");
        builder.UseSetting(github + "Environments:0", "production");
        builder.UseSetting(github + "Conditions:repository_owner:0", "acme");
        const string gitlab = "Intake:TrustPolicies:1:";
        builder.UseSetting(gitlab + "Name", "gitlab-acme");
        builder.UseSetting(gitlab + "Issuer", Issuer.Issuer);
        builder.UseSetting(gitlab + "Audience", GitLabAudience);
        builder.UseSetting(gitlab + "Claims", "gitlab");
        builder.UseSetting(gitlab + "Repositories:0", "acme/**");
        builder.UseSetting(gitlab + "Refs:0", "refs/heads/main");
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Issuer.DisposeAsync();
        await Stranger.DisposeAsync();
    }
}

/// <summary>
/// Issue 13, federated: a CI system submits with its own OIDC token, and identity comes from the verified
/// claims. Every way to forge or stretch such a token is refused with problem details, and nothing is stored.
/// </summary>
public sealed class FederatedIdentityTests(FederatedIntakeFactory app) : IClassFixture<FederatedIntakeFactory>
{
    private const string Sha = "89abcdef0123456789abcdef0123456789abcdef";

    private HttpClient WithToken(string token)
    {
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static object Body(string? repository = null, string? gitRef = null, string? sha = null, string? environment = null) => new
    {
        name = "federated",
        repository,
        @ref = gitRef,
        commitSha = sha,
        runnerTemplate = "default",
        environment,
        steps = new object[] { new { run = "echo hi" } },
    };

    private string GitHubToken(string repository = "acme/widgets", string gitRef = "refs/heads/main") =>
        app.Issuer.Mint(FakeOidcIssuer.GitHubClaims(repository, gitRef, Sha), FederatedIntakeFactory.Audience);

    private async Task<(int Jobs, int Outbox)> StoredAsync() =>
        await app.WithDbAsync(async db => (await db.Jobs.CountAsync(), await db.OutboxMessages.CountAsync()));

    [Fact]
    public async Task A_github_token_submits_with_the_identity_its_claims_name()
    {
        using var client = WithToken(GitHubToken());
        var id = await Jobs.SubmitAsync(client, Body(environment: "production"));

        var job = await app.WithDbAsync(db => db.Jobs.SingleAsync(j => j.Id == id));
        Assert.Equal(("acme/widgets", "refs/heads/main", Sha, "production"), (job.Repository, job.Ref, job.CommitSha, job.Environment));
        Assert.Equal("oidc:github-acme:repo:acme/widgets:ref:refs/heads/main", job.SubmittedBy);
        // The same values written out in the body are fine too; and it may follow its own job.
        await Jobs.SubmitAsync(client, Body("acme/widgets", "refs/heads/main", Sha.ToUpperInvariant()));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/api/v1/jobs/{id}/logs")).StatusCode);
    }

    [Fact]
    public async Task A_gitlab_token_maps_ref_type_and_ref_to_a_full_ref()
    {
        var token = app.Issuer.Mint(FakeOidcIssuer.GitLabClaims("acme/group/tool", "main", Sha), FederatedIntakeFactory.GitLabAudience);
        using var client = WithToken(token);
        var id = await Jobs.SubmitAsync(client, Body());
        var job = await app.WithDbAsync(db => db.Jobs.SingleAsync(j => j.Id == id));
        Assert.Equal(("acme/group/tool", "refs/heads/main"), (job.Repository, job.Ref));
    }

    [Theory]
    [InlineData("repository")]
    [InlineData("ref")]
    [InlineData("commitSha")]
    [InlineData("environment")]
    public async Task A_body_that_disagrees_with_the_verified_claims_is_403_naming_the_field(string field)
    {
        using var client = WithToken(GitHubToken());
        var body = field switch
        {
            "repository" => Body(repository: "acme/prod"),
            "ref" => Body(gitRef: "refs/heads/release"),
            "commitSha" => Body(sha: "0123456789abcdef0123456789abcdef01234567"),
            _ => Body(environment: "staging"), // the policy allows production only
        };
        var before = await StoredAsync();
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", body);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Equal(before, await StoredAsync());
    }

    public static TheoryData<string> BadTokens => ["expired", "not yet valid", "other audience", "untrusted issuer", "claims another issuer",
        "re-signed with another key", "alg none", "hs256 with the public key", "condition not met", "repository outside the policy",
        "ref outside the policy", "tampered payload"];

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_token_that_does_not_verify_is_401_problem_details_and_nothing_is_stored(string how)
    {
        var claims = FakeOidcIssuer.GitHubClaims("acme/widgets", "refs/heads/main", Sha);
        var audience = FederatedIntakeFactory.Audience;
        var token = how switch
        {
            "expired" => app.Issuer.Mint(claims, audience, lifetime: TimeSpan.FromMinutes(-5)),
            "not yet valid" => app.Issuer.Mint(claims, audience, lifetime: TimeSpan.FromMinutes(20), notBefore: DateTimeOffset.UtcNow.AddMinutes(10)),
            "other audience" => app.Issuer.Mint(claims, "https://someone-else.test"),
            "untrusted issuer" => app.Stranger.Mint(claims, audience),
            "claims another issuer" => app.Issuer.Mint(claims, audience, issuer: app.Stranger.Issuer),
            "re-signed with another key" => app.Issuer.Mint(claims, audience, key: new RsaSecurityKey(FakeOidcIssuer.NewKey().Rsa) { KeyId = app.Issuer.SigningKey.KeyId }),
            "alg none" => app.Issuer.MintUnsigned(claims, audience),
            "hs256 with the public key" => app.Issuer.MintHmacWithPublicKey(claims, audience),
            "condition not met" => app.Issuer.Mint(new Dictionary<string, object>(claims) { ["repository_owner"] = "evil" }, audience),
            "repository outside the policy" => app.Issuer.Mint(FakeOidcIssuer.GitHubClaims("evil/widgets", "refs/heads/main", Sha), audience),
            "ref outside the policy" => app.Issuer.Mint(FakeOidcIssuer.GitLabClaims("acme/tool", "feature", Sha), FederatedIntakeFactory.GitLabAudience),
            _ => Tamper(GitHubToken()),
        };
        var before = await StoredAsync();
        using var client = WithToken(token);
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", Body());

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("invalid_token", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal(before, await StoredAsync());
    }

    /// <summary>The payload rewritten to another repository, the signature kept.</summary>
    private static string Tamper(string token)
    {
        var parts = token.Split('.');
        var payload = Base64UrlEncoder.Decode(parts[1]).Replace("acme/widgets", "acme/prodsecr");
        return $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
    }

    [Fact]
    public async Task A_token_signed_with_a_rotated_key_is_accepted_after_one_refresh_of_the_jwks()
    {
        using (var first = WithToken(GitHubToken())) await Jobs.SubmitAsync(first, Body()); // keys fetched and cached
        var fetched = app.Issuer.JwksRequests;

        app.Issuer.Rotate();
        using var client = WithToken(GitHubToken());
        await Jobs.SubmitAsync(client, Body());
        Assert.True(app.Issuer.JwksRequests > fetched, "the unknown kid should make the intake fetch the JWKS again");
    }

    [Fact]
    public async Task A_federated_caller_sees_only_its_own_repository()
    {
        using var admin = app.AdminClient();
        var theirs = await Jobs.SubmitAsync(admin, Jobs.Valid(repository: "acme/other"));
        using var client = WithToken(GitHubToken());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/jobs/{theirs}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync($"/api/v1/jobs/{theirs}/cancel", null)).StatusCode);
        var list = await client.GetFromJsonAsync<JsonElement>("/api/v1/jobs?pageSize=100");
        Assert.All(list.GetProperty("items").EnumerateArray(), j => Assert.Equal("acme/widgets", j.GetProperty("repository").GetString()));
        // And it is not an admin.
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/v1/api-keys")).StatusCode);
    }
}
