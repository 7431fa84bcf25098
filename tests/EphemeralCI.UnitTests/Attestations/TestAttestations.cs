using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.UnitTests.Attestations;

/// <summary>A statement, a P-256 key and its JWKS, as the broker would have them.</summary>
internal static class TestAttestations
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";

    public static JobStatement Statement(bool teardownPassed = true, string repository = "acme/widgets") => JobStatement.For(new JobPredicate(
        new BuildDefinition(AttestationFormat.BuildType,
            new ExternalParameters(repository, "refs/heads/main", Commit, "default", null, "build"),
            new InternalParameters(new Submitter("api-key", "api-key:42", "42"))),
        new RunDetails(new Builder(AttestationFormat.DefaultBuilderId, new Dictionary<string, string> { ["ephemeralci"] = "1.0.0" }),
            new BuildMetadata(Guid.Parse("6f1c1e4e-8a4b-4a6a-9d59-2d9d5a3e0c11").ToString(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(1))),
        new JobRunner("runner-6f1c", "local", new RunnerTemplateRef("default", "sha256:" + new string('a', 64))),
        new JobLifecycle(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(1), DateTimeOffset.UnixEpoch.AddMinutes(1)),
        new TeardownReport(teardownPassed, teardownPassed ? 1 : 3,
            [new TeardownCheck("processes", teardownPassed, "/proc", teardownPassed ? null : "pid 4242 (sleep, its id in the environment)")]),
        [new IssuedSecret("NPM_TOKEN", 2, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(1))],
        new JobCaches([], [new CacheUse("deps", "saved", null, "acme/widgets@refs/heads/main", new string('b', 64), 1234)]),
        new JobOutcome("succeeded", 0, null)));

    public static DsseEnvelope Sign(JobStatement statement, ECDsa key, string kid) =>
        Dsse.Sign(AttestationFormat.PayloadType, JsonSerializer.SerializeToUtf8Bytes(statement, AttestationFormat.Json), key, kid);

    public static JsonWebKeySet Jwks(ECDsa key, string kid)
    {
        var p = key.ExportParameters(false);
        return new JsonWebKeySet([new JsonWebKey("EC", "P-256", Base64Url.EncodeToString(p.Q.X), Base64Url.EncodeToString(p.Q.Y), kid, "ES256", "sig")]);
    }
}
