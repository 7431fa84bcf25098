using System.Net;
using System.Text;
using EphemeralCI.Intake.WebUi;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

/// <summary>The web UI's HTTP views of the broker's and the cache's admin APIs: what they send, and how they read answers.</summary>
public sealed class RemoteAdminViewTests
{
    private sealed class AdminApi(HttpStatusCode status, string body = "[]") : HttpMessageHandler
    {
        public List<(HttpMethod Method, string Url, string? Authorization)> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Requests.Add((request.Method, request.RequestUri!.ToString(), request.Headers.Authorization?.ToString()));
            return Task.FromResult(new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, "application/json") });
        }
    }

    [Fact]
    public async Task The_admins_token_goes_as_a_bearer_header_to_the_configured_listener_even_under_a_path()
    {
        var api = new AdminApi(HttpStatusCode.OK, """[{"id":7,"at":"2026-12-04T10:00:00Z","actor":"job","action":"exchange.granted","secret":"NPM_TOKEN","jobId":null,"repository":"acme/w","ref":"refs/heads/main","detail":null}]""");
        var view = new HttpSecretsAdminView(new HttpClient(api), "http://broker:8081/base/", "admin-token");

        var audit = await view.RecentAuditAsync(50, CancellationToken.None);

        var (method, url, authorization) = Assert.Single(api.Requests);
        Assert.Equal((HttpMethod.Get, "http://broker:8081/base/api/v1/admin/audit/recent?limit=50", "Bearer admin-token"), (method, url, authorization));
        Assert.Equal(("exchange.granted", "NPM_TOKEN"), (Assert.Single(audit).Action, audit[0].Secret));
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized)]
    [InlineData(HttpStatusCode.Forbidden)]
    public async Task A_refused_token_is_its_own_error_and_its_message_does_not_carry_the_token(HttpStatusCode status)
    {
        var view = new HttpSecretsAdminView(new HttpClient(new AdminApi(status)), "http://broker:8081", "admin-token");

        var refused = await Assert.ThrowsAsync<AdminTokenRefusedException>(() => view.SecretsAsync(CancellationToken.None));
        Assert.DoesNotContain("admin-token", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_failure_names_the_url_and_status_only()
    {
        var view = new HttpCacheAdminView(new HttpClient(new AdminApi(HttpStatusCode.ServiceUnavailable)), "http://cache:8081", "admin-token");

        var failed = await Assert.ThrowsAsync<HttpRequestException>(() => view.UsageAsync(CancellationToken.None));
        Assert.Equal("http://cache:8081/cache/admin/usage/scopes answered HTTP 503", failed.Message);
    }

    [Fact]
    public async Task The_cache_reads_usage_per_scope_with_the_quota_and_a_missing_entry_is_no_error_on_delete()
    {
        var usage = new HttpCacheAdminView(new HttpClient(new AdminApi(HttpStatusCode.OK,
            """{"repositoryQuotaBytes":1048576,"scopes":[{"repository":"acme/w","scope":"refs/heads/main","entries":3,"bytes":2048}]}""")), "http://cache:8081", "t");
        var scope = Assert.Single(await usage.UsageAsync(CancellationToken.None));
        Assert.Equal(("acme/w", "refs/heads/main", 3, 2048L, 1048576L), (scope.Repository, scope.Scope, scope.Entries, scope.Bytes, usage.RepositoryQuotaBytes));

        var api = new AdminApi(HttpStatusCode.NotFound);
        Assert.False(await new HttpCacheAdminView(new HttpClient(api), "http://cache:8081", "t").DeleteAsync(42, CancellationToken.None));
        Assert.Equal((HttpMethod.Delete, "http://cache:8081/cache/admin/entries/42"), (api.Requests[0].Method, api.Requests[0].Url));
    }
}
