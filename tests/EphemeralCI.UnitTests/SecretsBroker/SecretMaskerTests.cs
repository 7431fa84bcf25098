using System.Net;
using System.Text;
using EphemeralCI.RunnerAgent;
using Xunit;

namespace EphemeralCI.UnitTests.SecretsBroker;

public sealed class SecretMaskerTests
{
    private const string Secret = "s3cr3t-Value+/=é€";

    private static string Run(SecretMasker masker, IEnumerable<byte[]> chunks)
    {
        var output = new List<byte>();
        foreach (var chunk in chunks) output.AddRange(masker.Process(chunk));
        output.AddRange(masker.Flush());
        return Encoding.UTF8.GetString([.. output]);
    }

    private static IEnumerable<byte[]> SplitAt(byte[] bytes, params int[] cuts)
    {
        var start = 0;
        foreach (var cut in cuts.Order())
        {
            yield return bytes[start..cut];
            start = cut;
        }
        yield return bytes[start..];
    }

    [Fact]
    public void Masks_the_value_in_one_chunk()
    {
        var masker = new SecretMasker([Secret]);

        Assert.Equal("token=*** done\n", Run(masker, [Encoding.UTF8.GetBytes($"token={Secret} done\n")]));
    }

    [Fact]
    public void Masks_a_value_split_at_every_possible_byte_boundary_including_inside_multibyte_characters()
    {
        var text = $"a{Secret}b{Secret}{Secret}\n";
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var masked = Run(new SecretMasker([Secret]), SplitAt(bytes, cut));
            Assert.Equal("a***b******\n", masked);
        }
    }

    [Fact]
    public void Masks_a_value_split_across_every_pair_of_boundaries()
    {
        var bytes = Encoding.UTF8.GetBytes($"x{Secret}y");
        for (var first = 0; first <= bytes.Length; first++)
        {
            for (var second = first; second <= bytes.Length; second++)
            {
                Assert.Equal("x***y", Run(new SecretMasker([Secret]), SplitAt(bytes, first, second)));
            }
        }
    }

    [Fact]
    public void Masks_one_byte_at_a_time()
    {
        var bytes = Encoding.UTF8.GetBytes($"start {Secret} middle {Secret}");

        Assert.Equal("start *** middle ***", Run(new SecretMasker([Secret]), bytes.Select(b => new[] { b })));
    }

    [Fact]
    public void Random_chunkings_agree_with_masking_the_whole_text()
    {
        var secrets = new[] { "hunter22", "hunter22-and-more", "pa ss&wo=rd", "日本語のひみつ" };
        var random = new Random(20261125); // fixed seed: the test is repeatable
        for (var round = 0; round < 300; round++)
        {
            var text = new StringBuilder();
            for (var part = 0; part < 12; part++)
            {
                text.Append(random.Next(4) switch
                {
                    0 => secrets[random.Next(secrets.Length)],
                    1 => Convert.ToBase64String(Encoding.UTF8.GetBytes(secrets[random.Next(secrets.Length)])),
                    2 => Uri.EscapeDataString(secrets[random.Next(secrets.Length)]),
                    _ => "log line " + random.Next(1000) + "\n",
                });
            }
            var bytes = Encoding.UTF8.GetBytes(text.ToString());
            var cuts = Enumerable.Range(0, random.Next(1, 8)).Select(_ => random.Next(bytes.Length + 1)).Distinct().ToArray();

            var whole = Run(new SecretMasker(secrets), [bytes]);
            var chunked = Run(new SecretMasker(secrets), SplitAt(bytes, cuts));

            Assert.Equal(whole, chunked);
            foreach (var form in secrets.SelectMany(SecretMasker.FormsOf)) Assert.DoesNotContain(form, chunked, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("base64")]
    [InlineData("base64url")]
    [InlineData("url")]
    [InlineData("form")]
    public void Masks_encoded_forms(string encoding)
    {
        var value = "p@ss w/rd+?&=é~~~";
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(value));
        var encoded = encoding switch
        {
            "base64" => b64,
            "base64url" => b64.TrimEnd('=').Replace('+', '-').Replace('/', '_'),
            "url" => Uri.EscapeDataString(value),
            _ => WebUtility.UrlEncode(value),
        };
        Assert.NotEqual(value, encoded);
        var bytes = Encoding.UTF8.GetBytes($"Authorization: Basic {encoded}\n");

        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var masked = Run(new SecretMasker([value]), SplitAt(bytes, cut));
            Assert.DoesNotContain(encoded.TrimEnd('='), masked, StringComparison.Ordinal);
            Assert.StartsWith("Authorization: Basic ***", masked, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_longer_of_two_overlapping_values_is_masked_whole()
    {
        var masker = new SecretMasker(["abcdef", "abcdefghij"]);

        Assert.Equal("[***] [***]", Run(masker, SplitAt(Encoding.UTF8.GetBytes("[abcdefghij] [abcdef]"), 8)));
    }

    [Fact]
    public void A_held_back_prefix_that_never_completes_is_released_unchanged()
    {
        var masker = new SecretMasker([Secret]);

        var first = masker.Process(Encoding.UTF8.GetBytes("tail s3cr3t-Val"));
        var rest = masker.Flush();

        Assert.Equal("tail ", Encoding.UTF8.GetString(first));
        Assert.Equal("s3cr3t-Val", Encoding.UTF8.GetString(rest));
    }

    [Fact]
    public void Holds_back_no_more_than_the_longest_form_minus_one_byte()
    {
        var masker = new SecretMasker([Secret]);
        var prefix = Encoding.UTF8.GetBytes(Secret)[..^1];

        var emitted = masker.Process([.. Encoding.UTF8.GetBytes(new string('x', 1000)), .. prefix]);

        Assert.Equal(1000, emitted.Length);
        Assert.True(masker.MaxPatternLength > prefix.Length);
    }

    [Fact]
    public void Each_line_of_a_multi_line_value_is_masked_when_printed_alone()
    {
        const string key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----";
        var masker = new SecretMasker([key]);

        var masked = Run(masker, [Encoding.UTF8.GetBytes("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n")]);

        Assert.Equal("line: ***\n", masked);
    }

    [Fact]
    public void Very_short_values_are_not_masked_and_no_values_means_pass_through()
    {
        Assert.Equal("ok 1", Run(new SecretMasker(["ok", "1", ""]), [Encoding.UTF8.GetBytes("ok 1")]));
        Assert.True(new SecretMasker([]).IsEmpty);
    }

    [Fact]
    public void Mask_text_masks_whole_strings()
    {
        Assert.Equal("secret *** shown", new SecretMasker([Secret]).MaskText($"secret {Secret} shown"));
    }

    [Fact]
    public void Secrets_are_named_but_never_shown_in_the_agents_own_lines()
    {
        var grant = new SecretsGrant(new Dictionary<string, string> { ["B"] = "bbb-value", ["A"] = "aaa-value" },
            new Dictionary<string, string> { ["C"] = "ref-not-allowed" });

        var lines = JobSecrets.Describe(grant).ToList();

        Assert.Equal(["==> secrets: A, B (masked in this log)", "==> secret C was not granted: ref-not-allowed"], lines);
    }
}
