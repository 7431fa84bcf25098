using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Xunit;

namespace EphemeralCI.UnitTests.JobTokens;

/// <summary>The broker's keys as a relying party reads them: discovery → JWKS, refreshed early for an unknown key id, kept through an outage.</summary>
public sealed class JwksKeySourceTests
{
    private sealed class FakeBroker : HttpMessageHandler
    {
        public List<JsonWebKey> Keys { get; } = [];
        public bool Down { get; set; }
        public int JwksFetches;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            if (Down) throw new HttpRequestException("connection refused");
            var path = request.RequestUri!.AbsolutePath;
            string body;
            if (path == "/.well-known/openid-configuration")
            {
                body = JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["issuer"] = "ephemeralci",
                    ["jwks_uri"] = "http://broker.test/.well-known/jwks.json",
                });
            }
            else if (path == "/.well-known/jwks.json")
            {
                Interlocked.Increment(ref JwksFetches);
                body = JsonSerializer.Serialize(new { keys = Keys.Select(k => new { k.Kty, k.Kid, k.Crv, k.X, k.Y, k.Use, k.Alg }).ToList() },
                    new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
            }
            else return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") });
        }
    }

    private static JsonWebKey NewKey(string kid)
    {
        var p = ECDsa.Create(ECCurve.NamedCurves.nistP256).ExportParameters(false);
        return new JsonWebKey
        {
            Kty = "EC", Kid = kid, Crv = "P-256", Use = "sig", Alg = "ES256",
            X = Base64UrlEncoder.Encode(p.Q.X), Y = Base64UrlEncoder.Encode(p.Q.Y),
        };
    }

    private static JwksKeySource Source(FakeBroker broker) =>
        new(new HttpClient(broker), Options.Create(new JobTokenOptions { Authority = "http://broker.test" }));

    [Fact]
    public async Task Keys_come_through_discovery_and_an_unknown_key_id_fetches_them_again()
    {
        var broker = new FakeBroker();
        broker.Keys.Add(NewKey("k1"));
        var source = Source(broker);

        Assert.Equal(["k1"], (await source.GetKeysAsync("k1")).Select(k => k.KeyId));
        Assert.Equal(["k1"], (await source.GetKeysAsync("k1")).Select(k => k.KeyId));
        Assert.Equal(1, broker.JwksFetches); // cached

        // The broker rotates: a token signed by the new key makes the source look again.
        broker.Keys.Add(NewKey("k2"));
        // At once when IdentityModel's blocking switch took effect (hosts set it before any discovery is read);
        // in this shared test process another test may have read the switch first, so allow the background refresh.
        var keys = await source.GetKeysAsync("k2");
        for (var i = 0; i < 50 && !keys.Any(k => k.KeyId == "k2"); i++)
        {
            await Task.Delay(100);
            keys = await source.GetKeysAsync("k2");
        }
        Assert.Contains("k2", keys.Select(k => k.KeyId));
    }

    [Fact]
    public async Task A_broker_that_never_answered_gives_no_key_and_one_that_went_away_leaves_the_last_keys()
    {
        var broker = new FakeBroker { Down = true };
        broker.Keys.Add(NewKey("k1"));
        var source = Source(broker);
        Assert.Empty(await source.GetKeysAsync("k1"));

        var other = new FakeBroker();
        other.Keys.Add(NewKey("k1"));
        var known = Source(other);
        Assert.Single(await known.GetKeysAsync("k1"));
        other.Down = true;
        Assert.Equal(["k1"], (await known.GetKeysAsync("k-unknown")).Select(k => k.KeyId));
    }
}
