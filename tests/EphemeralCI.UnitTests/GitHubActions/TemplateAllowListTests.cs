using EphemeralCI.GitHubActions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.GitHubActions;

public sealed class TemplateAllowListTests
{
    private static GitHubRunnerTemplate Template(params string[] repositories) => new() { Repositories = [.. repositories] };

    [Fact]
    public void An_empty_list_allows_every_repository()
    {
        Assert.True(Template().Allows("acme/widgets"));
        Assert.True(Template().Allows("anyone/anything"));
    }

    [Theory]
    [InlineData("acme/widgets", true)]
    [InlineData("ACME/Widgets", true)]
    [InlineData("acme/tools", true)]   // acme/*
    [InlineData("Acme/anything", true)]
    [InlineData("beta/gadgets", true)] // exact
    [InlineData("beta/widgets", false)]
    [InlineData("acme-evil/widgets", false)]
    [InlineData("acm/widgets", false)]
    [InlineData("evil/acme", false)]
    [InlineData("acme", false)]
    [InlineData("/widgets", false)]
    public void Exact_names_and_owner_globs_match_case_insensitively_and_nothing_else(string repository, bool allowed) =>
        Assert.Equal(allowed, Template("acme/*", "beta/gadgets").Allows(repository));

    [Theory]
    [InlineData("acme/widgets", true)]
    [InlineData("acme/*", true)]
    [InlineData("a-b/c.d_e-f", true)]
    [InlineData("*/*", false)]
    [InlineData("acme/wid*", false)]
    [InlineData("acme/**", false)]
    [InlineData("acme", false)]
    [InlineData("acme/", false)]
    [InlineData("acme/widgets/x", false)]
    [InlineData(" acme/widgets", false)]
    [InlineData("acme/..", false)]
    [InlineData("", false)]
    public void Only_owner_slash_name_or_owner_slash_star_is_a_pattern(string pattern, bool valid) =>
        Assert.Equal(valid, GitHubRunnerTemplate.IsRepositoryPattern(pattern));

    [Fact]
    public void A_bad_pattern_fails_the_start_naming_the_setting()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:githubactionsdb"] = "Host=127.0.0.1;Database=unused",
            ["GitHubActions:AppId"] = "1",
            ["GitHubActions:IntakeUrl"] = "http://127.0.0.1:1",
            ["GitHubActions:SecretsBrokerUrl"] = "http://127.0.0.1:1",
            ["GitHubActions:Repositories:0"] = "acme/widgets",
            ["GitHubActions:Templates:big:RunnerTemplate"] = "default",
            ["GitHubActions:Templates:big:Labels:0"] = "big",
            ["GitHubActions:Templates:big:Repositories:0"] = "acme/widgets",
            ["GitHubActions:Templates:big:Repositories:1"] = "acme/wid*",
        });
        Assert.True(builder.AddGitHubActions());
        using var services = builder.Services.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<GitHubActionsOptions>>().Value);
        Assert.Contains("'GitHubActions:Templates:big:Repositories:1' ('acme/wid*')", error.Message);
    }
}
