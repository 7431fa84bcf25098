using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Attestations;
using Xunit;

namespace EphemeralCI.UnitTests.Attestations;

public sealed class DsseTests
{
    [Fact]
    public void Pre_authentication_encoding_is_the_one_of_the_DSSE_specification()
    {
        // The example of DSSE's protocol.md.
        var pae = Dsse.PreAuthEncoding("http://example.com/HelloWorld", "hello world"u8);
        Assert.Equal("DSSEv1 29 http://example.com/HelloWorld 11 hello world", Encoding.UTF8.GetString(pae));
    }

    [Fact]
    public void Lengths_are_byte_counts_not_characters()
    {
        var pae = Dsse.PreAuthEncoding("t", Encoding.UTF8.GetBytes("é"));
        Assert.Equal("DSSEv1 1 t 2 "u8.ToArray().Concat(Encoding.UTF8.GetBytes("é")), pae);
    }

    [Fact]
    public void The_signature_is_DER_over_the_encoding_not_over_the_payload()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var payload = "{}"u8.ToArray();
        var envelope = Dsse.Sign(AttestationFormat.PayloadType, payload, key, "k1");
        var sig = Convert.FromBase64String(envelope.Signatures[0].Sig);

        Assert.Equal(0x30, sig[0]); // an ASN.1 SEQUENCE
        Assert.True(key.VerifyData(Dsse.PreAuthEncoding(AttestationFormat.PayloadType, payload), sig, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
        Assert.False(key.VerifyData(payload, sig, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
        Assert.Equal("k1", envelope.Signatures[0].KeyId);
        Assert.Equal(payload, Convert.FromBase64String(envelope.Payload));
    }

    [Fact]
    public void The_envelope_serializes_with_the_field_names_of_the_specification()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var json = JsonSerializer.Serialize(Dsse.Sign("t", "x"u8.ToArray(), key, "k1"));
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(["payloadType", "payload", "signatures"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["keyid", "sig"], doc.RootElement.GetProperty("signatures")[0].EnumerateObject().Select(p => p.Name));
    }
}
