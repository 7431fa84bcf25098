using EphemeralCI.SecretsBroker.Policies;
using Xunit;

namespace EphemeralCI.UnitTests.SecretsBroker;

public sealed class SecretPolicyTests
{
    [Theory]
    [InlineData("acme/*", "acme/widgets", true)]
    [InlineData("acme/*", "ACME/Widgets", true)]
    [InlineData("acme/*", "acme-evil/widgets", false)]
    [InlineData("acme/*", "acme/widgets/sub", false)]
    [InlineData("**", "anything/at/all", true)]
    [InlineData("acme/widg?ts", "acme/widgets", true)]
    [InlineData("acme/w.dgets", "acme/widgets", false)]
    public void Repository_globs(string pattern, string repository, bool expected) =>
        Assert.Equal(expected, SecretPolicy.GlobMatches(pattern, repository, ignoreCase: true));

    [Theory]
    [InlineData("refs/heads/main", "refs/heads/main", true)]
    [InlineData("refs/heads/main", "refs/heads/main2", false)]
    [InlineData("refs/heads/main", "refs/heads/Main", false)]
    [InlineData("refs/tags/v*", "refs/tags/v1.2.3", true)]
    [InlineData("refs/tags/v*", "refs/tags/x1", false)]
    [InlineData("refs/heads/*", "refs/heads/feature/x", false)]
    [InlineData("refs/heads/**", "refs/heads/feature/x", true)]
    [InlineData("refs/heads/main", "refs/pull/1/merge", false)]
    public void Ref_globs(string pattern, string gitRef, bool expected) =>
        Assert.Equal(expected, SecretPolicy.GlobMatches(pattern, gitRef, ignoreCase: false));

    [Fact]
    public void Repository_then_ref_then_environment_must_all_allow()
    {
        string[] repos = ["acme/*"];
        string[] refs = ["refs/heads/main"];

        Assert.Equal(PolicyDecision.Allowed, SecretPolicy.Evaluate(repos, refs, null, "acme/a", "refs/heads/main", null));
        Assert.Equal(PolicyDecision.RepositoryNotAllowed, SecretPolicy.Evaluate(repos, refs, null, "globex/a", "refs/heads/main", null));
        Assert.Equal(PolicyDecision.RefNotAllowed, SecretPolicy.Evaluate(repos, refs, null, "acme/a", "refs/heads/dev", null));
        Assert.Equal(PolicyDecision.EnvironmentNotAllowed, SecretPolicy.Evaluate(repos, refs, "production", "acme/a", "refs/heads/main", null));
        Assert.Equal(PolicyDecision.EnvironmentNotAllowed, SecretPolicy.Evaluate(repos, refs, "production", "acme/a", "refs/heads/main", "staging"));
        Assert.Equal(PolicyDecision.Allowed, SecretPolicy.Evaluate(repos, refs, "production", "acme/a", "refs/heads/main", "production"));
        Assert.Equal(PolicyDecision.RepositoryNotAllowed, SecretPolicy.Evaluate(repos, refs, null, "", "refs/heads/main", null));
    }

    [Theory]
    [InlineData("", "must not be empty")]
    [InlineData("a b", "whitespace")]
    public void Bad_patterns_are_explained(string pattern, string reason) =>
        Assert.Contains(reason, SecretPolicy.ValidatePattern(pattern));
}
