using System.Security.Cryptography;
using System.Text.Json;
using EphemeralCI.Attestations;
using Xunit;

namespace EphemeralCI.UnitTests.Attestations;

public sealed class AttestationVerifierTests
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    [Fact]
    public void A_retried_jobs_lost_runner_not_verified_gone_makes_the_attestation_invalid()
    {
        var statement = TestAttestations.Statement();
        var failed = new EphemeralCI.Contracts.Messages.TeardownReport(false, 3, [new("machine", false, "host-a", "the provisioner's machine is gone")]);
        var retried = statement with { Predicate = statement.Predicate with { EarlierAttempts = [new EarlierAttempt(1, "runner-x", "local", "lost", null, failed)] } };
        var result = AttestationVerifier.Verify(TestAttestations.Sign(retried, _key, "k1"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("attempt 1 (runner-x) was not verified gone: machine"));
    }

    [Fact]
    public void A_statement_signed_by_a_key_of_the_JWKS_is_valid()
    {
        var result = AttestationVerifier.Verify(TestAttestations.Sign(TestAttestations.Statement(), _key, "k1"), TestAttestations.Jwks(_key, "k1"));

        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal("k1", result.KeyId);
        Assert.Equal("acme/widgets", result.Statement!.Subject[0].Name);
    }

    [Fact]
    public void Changing_any_byte_of_the_payload_breaks_it()
    {
        var envelope = TestAttestations.Sign(TestAttestations.Statement(), _key, "k1");
        var jwks = TestAttestations.Jwks(_key, "k1");
        var payload = Convert.FromBase64String(envelope.Payload);
        for (var i = 0; i < payload.Length; i++)
        {
            var tampered = (byte[])payload.Clone();
            tampered[i] ^= 0x01;
            var result = AttestationVerifier.Verify(envelope with { Payload = Convert.ToBase64String(tampered) }, jwks);
            Assert.False(result.Valid, $"byte {i} changed and still valid");
            Assert.Contains(result.Problems, p => p.Contains("does not match the payload"));
        }
    }

    [Fact]
    public void Changing_the_payload_type_breaks_the_signature()
    {
        var envelope = TestAttestations.Sign(TestAttestations.Statement(), _key, "k1");
        var result = AttestationVerifier.Verify(envelope with { PayloadType = "application/json" }, TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("does not match"));
    }

    [Fact]
    public void Another_key_under_the_same_id_is_refused()
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var result = AttestationVerifier.Verify(TestAttestations.Sign(TestAttestations.Statement(), other, "k1"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
    }

    [Fact]
    public void A_key_id_the_JWKS_does_not_have_is_refused()
    {
        var result = AttestationVerifier.Verify(TestAttestations.Sign(TestAttestations.Statement(), _key, "k2"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("'k2'"));
    }

    [Fact]
    public void A_subject_other_than_the_jobs_repository_is_refused_even_when_signed()
    {
        var statement = TestAttestations.Statement();
        statement = statement with { Subject = [new ResourceDescriptor("evil/fork", statement.Subject[0].Digest)] };
        var result = AttestationVerifier.Verify(TestAttestations.Sign(statement, _key, "k1"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("evil/fork"));
    }

    [Fact]
    public void A_subject_commit_other_than_the_jobs_is_refused()
    {
        var statement = TestAttestations.Statement();
        statement = statement with { Subject = [new ResourceDescriptor("acme/widgets", new Dictionary<string, string> { ["gitCommit"] = new string('f', 40) })] };
        var result = AttestationVerifier.Verify(TestAttestations.Sign(statement, _key, "k1"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
    }

    [Fact]
    public void What_the_caller_expects_must_match()
    {
        var envelope = TestAttestations.Sign(TestAttestations.Statement(), _key, "k1");
        var jwks = TestAttestations.Jwks(_key, "k1");
        Assert.False(AttestationVerifier.Verify(envelope, jwks, new ExpectedSubject(JobId: Guid.NewGuid())).Valid);
        Assert.False(AttestationVerifier.Verify(envelope, jwks, new ExpectedSubject(Repository: "acme/other")).Valid);
        Assert.False(AttestationVerifier.Verify(envelope, jwks, new ExpectedSubject(CommitSha: new string('e', 40))).Valid);
        Assert.True(AttestationVerifier.Verify(envelope, jwks, new ExpectedSubject(Repository: "acme/widgets", CommitSha: TestAttestations.Commit)).Valid);
    }

    [Fact]
    public void A_failed_teardown_check_makes_it_invalid_with_what_was_left()
    {
        var result = AttestationVerifier.Verify(TestAttestations.Sign(TestAttestations.Statement(teardownPassed: false), _key, "k1"), TestAttestations.Jwks(_key, "k1"));
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("teardown check failed") && p.Contains("pid 4242"));
    }

    [Fact]
    public void An_envelope_without_signatures_is_invalid()
    {
        var envelope = TestAttestations.Sign(TestAttestations.Statement(), _key, "k1") with { Signatures = [] };
        Assert.False(AttestationVerifier.Verify(envelope, TestAttestations.Jwks(_key, "k1")).Valid);
    }

    [Fact]
    public void The_JWKS_reads_as_the_broker_publishes_it()
    {
        var json = JsonSerializer.Serialize(TestAttestations.Jwks(_key, "k1"));
        using var found = JsonWebKeySet.Parse(json).FindP256("k1");
        Assert.NotNull(found);
        Assert.Null(JsonWebKeySet.Parse(json).FindP256("nope"));
        Assert.Throws<FormatException>(() => JsonWebKeySet.Parse("{}"));
    }
}
