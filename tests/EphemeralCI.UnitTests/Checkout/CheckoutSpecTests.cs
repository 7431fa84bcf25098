using System.Text.Json;
using EphemeralCI.Cache.Git;
using EphemeralCI.Cli.JobFiles;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Validation;
using Xunit;

namespace EphemeralCI.UnitTests.Checkout;

/// <summary><c>checkout: false | true | {depth, submodules, lfs, path}</c> through JSON, the job file and the intake's validation; the refs a job may claim.</summary>
public sealed class CheckoutSpecTests
{
    private static JobSpec Spec(CheckoutSpec? checkout) => new()
    {
        Repository = "acme/widgets", Ref = "refs/heads/main", CommitSha = new string('a', 40), RunnerTemplate = "default",
        Steps = [new StepSpec { Run = "true" }], Checkout = checkout,
    };

    private static JobSpec FromJson(string checkout) =>
        JsonSerializer.Deserialize<JobSpec>($$"""{"repository":"a/b","checkout":{{checkout}}}""", JsonSerializerOptions.Web)!;

    [Fact]
    public void Json_takes_false_true_and_an_object_and_writes_false_back()
    {
        Assert.False(FromJson("false").Checkout!.Enabled);
        Assert.True(FromJson("true").Checkout!.Enabled);
        Assert.Null(FromJson("null").Checkout);
        var full = FromJson("""{"depth":0,"submodules":"recursive","lfs":true,"path":"src/app"}""").Checkout!;
        Assert.Equal((0, "recursive", true, "src/app"), (full.Depth!.Value, full.Submodules, full.Lfs!.Value, full.Path));
        Assert.Equal("true", FromJson("""{"submodules":true}""").Checkout!.Submodules);
        Assert.Equal("false", JsonSerializer.Serialize(CheckoutSpec.Skip, JsonSerializerOptions.Web));
        Assert.Equal(full, JsonSerializer.Deserialize<CheckoutSpec>(JsonSerializer.Serialize(full, JsonSerializerOptions.Web), JsonSerializerOptions.Web));
    }

    [Theory]
    [InlineData("\"yes\"")]
    [InlineData("""{"depth":"1"}""")]
    [InlineData("""{"depht":1}""")]
    [InlineData("""{"lfs":"true"}""")]
    public void Json_of_the_wrong_shape_is_refused(string checkout) => Assert.Throws<JsonException>(() => FromJson(checkout));

    [Fact]
    public void The_validator_names_each_bad_checkout_field()
    {
        Assert.Empty(JobSpecValidator.Validate(Spec(new CheckoutSpec { Depth = 0, Submodules = "recursive", Path = "src/app" }), null));
        Assert.Empty(JobSpecValidator.Validate(Spec(CheckoutSpec.Skip with { Depth = -5 }), null));
        var errors = JobSpecValidator.Validate(Spec(new CheckoutSpec { Depth = -1, Submodules = "all", Path = "../outside" }), null);
        Assert.Equal(["checkout.depth", "checkout.path", "checkout.submodules"], errors.Keys.Order());
        Assert.Contains("checkout.path", JobSpecValidator.Validate(Spec(new CheckoutSpec { Path = "/etc" }), null).Keys);
        Assert.Contains("checkout.path", JobSpecValidator.Validate(Spec(new CheckoutSpec { Path = "a/.git/hooks" }), null).Keys);
    }

    [Fact]
    public void A_job_file_writes_checkout_as_false_or_a_mapping()
    {
        const string head = "repository: a/b\nref: refs/heads/main\ncommit: 0123456789abcdef0123456789abcdef01234567\n";
        Assert.False(JobFileParser.Parse(head + "checkout: false\nsteps: [echo]\n", "job.yml").Spec.Checkout!.Enabled);
        var spec = JobFileParser.Parse(head + "checkout:\n  depth: 0\n  submodules: recursive\n  lfs: true\n  path: app\nsteps: [echo]\n", "job.yml").Spec.Checkout!;
        Assert.Equal((0, "recursive", true, "app"), (spec.Depth!.Value, spec.Submodules, spec.Lfs!.Value, spec.Path));
        var bad = Assert.Throws<JobFileException>(() => JobFileParser.Parse(head + "checkout:\n  dept: 1\nsteps: [echo]\n", "job.yml"));
        Assert.Contains("checkout.dept", bad.Message);
    }

    [Theory]
    [InlineData("refs/heads/main", true)]
    [InlineData("refs/heads/feature/x-1", true)]
    [InlineData("refs/tags/v1.2.3", true)]
    [InlineData("refs/pull/12/merge", true)]
    [InlineData("refs/pull/12/head", true)]
    [InlineData("refs/merge-requests/4/head", true)]
    [InlineData("main", false)]
    [InlineData("refs/heads/../x", false)]
    [InlineData("refs/pull/x/merge", false)]
    [InlineData("refs/remotes/origin/main", false)]
    [InlineData("refs/heads/a.lock", false)]
    [InlineData("refs/heads/-x --upload-pack=evil", false)]
    public void Only_branch_tag_and_review_refs_can_be_claimed(string gitRef, bool claimable) =>
        Assert.Equal(claimable, GitMirrors.IsClaimableRef(gitRef));

    [Theory]
    [InlineData("git://127.0.0.1:9418/acme/lib.git", "acme/lib")]
    [InlineData("https://github.com/acme/lib", "acme/lib")]
    [InlineData("git@github.com:acme/lib.git", "acme/lib")]
    [InlineData("../lib.git", null)]
    [InlineData("/srv/git/lib", null)]
    public void A_submodule_url_names_its_repository(string url, string? repository) =>
        Assert.Equal(repository, EphemeralCI.Contracts.Jobs.SubmoduleUrls.RepositoryOf(url));

    [Fact]
    public void A_gitmodules_listing_gives_each_submodule_its_url_and_path_even_with_dots_in_its_name()
    {
        var modules = EphemeralCI.Contracts.Jobs.SubmoduleUrls.Parse(
            "submodule.vendor/lib.path vendor/lib\nsubmodule.vendor/lib.url ../lib.git\nsubmodule.v1.2.url https://h/o/n.git\nnot a line\n");
        Assert.Equal([new("vendor/lib", "../lib.git", "vendor/lib"), new("v1.2", "https://h/o/n.git", null)], modules);
    }

    [Theory]
    [InlineData("../lib.git", "acme/app", "acme/lib")]
    [InlineData("../lib", "acme/app", "acme/lib")]
    [InlineData("../../tools/deep.git", "acme/app", "tools/deep")]
    [InlineData("./../lib.git", "acme/app", "acme/lib")]
    [InlineData("../../../escape.git", "acme/app", null)]
    [InlineData("../lib.git", null, null)]
    [InlineData("https://github.com/acme/lib.git", "other/app", "acme/lib")]
    public void A_relative_submodule_url_resolves_against_its_superproject_as_the_forge_does(string url, string? superproject, string? repository) =>
        Assert.Equal(repository, EphemeralCI.Contracts.Jobs.SubmoduleUrls.RepositoryOf(url, superproject));
}
