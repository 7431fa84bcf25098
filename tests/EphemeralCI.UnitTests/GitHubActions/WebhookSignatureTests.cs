using System.Text;
using EphemeralCI.GitHubActions.Apis;
using EphemeralCI.GitHubActions.GitHub;
using Xunit;

namespace EphemeralCI.UnitTests.GitHubActions;

public sealed class WebhookSignatureTests
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"action":"queued"}""");

    // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    [Fact]
    public void Matches_GitHubs_documented_example()
    {
        const string expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        Assert.Equal(expected, WebhookSignature.Sign("It's a Secret to Everybody", "Hello, World!"u8));
        Assert.True(WebhookSignature.IsValid("It's a Secret to Everybody", "Hello, World!"u8, expected));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")]
    [InlineData("sha256=zz")]
    [InlineData("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1")]
    [InlineData("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17zz")]
    public void A_missing_or_malformed_header_is_refused(string? header) =>
        Assert.False(WebhookSignature.IsValid("secret", Body, header));

    [Fact]
    public void Another_secret_or_a_changed_body_is_refused_and_an_empty_secret_never_verifies()
    {
        var signature = WebhookSignature.Sign("secret", Body);
        Assert.True(WebhookSignature.IsValid("secret", Body, signature));
        Assert.True(WebhookSignature.IsValid("secret", Body, signature.ToUpperInvariant().Replace("SHA256=", "sha256=")));
        Assert.False(WebhookSignature.IsValid("other", Body, signature));
        Assert.False(WebhookSignature.IsValid("secret", [.. Body, (byte)' '], signature));
        Assert.False(WebhookSignature.IsValid("", Body, WebhookSignature.Sign("", Body)));
    }

    [Fact]
    public void A_delivery_is_parsed_for_the_fields_used_and_other_actions_are_ignored()
    {
        var e = WebhookApi.Parse(Encoding.UTF8.GetBytes("""
            {"action":"waiting","workflow_job":{"id":7,"run_id":8,"head_sha":"abc","head_branch":"feature/x","labels":["self-hosted","linux"],"runner_name":null},
             "repository":{"full_name":"acme/widgets"},"installation":{"id":9}}
            """))!;
        Assert.Equal((7L, 8L, 9L, "acme/widgets", "refs/heads/feature/x", "abc", "queued"), (e.WorkflowJobId, e.RunId, e.InstallationId, e.Repository, e.Ref, e.CommitSha, e.Status));
        Assert.Equal(["self-hosted", "linux"], e.Labels);
        Assert.Null(WebhookApi.Parse("""{"action":"requested"}"""u8.ToArray()));
    }
}
