using EphemeralCI.Cli.JobFiles;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

/// <summary>The job files shipped in examples/ must stay valid as the format changes.</summary>
public sealed class ExampleJobFilesTests
{
    private sealed class FakeGit : IGitCheckout
    {
        public GitFacts? Read(string directory) =>
            new("https://github.com/acme/ephemeralci.git", "refs/heads/main", "0123456789abcdef0123456789abcdef01234567");
    }

    public static TheoryData<string> Examples()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EphemeralCI.sln"))) dir = dir.Parent;
        var examples = Path.Combine(dir!.FullName, "examples");
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(examples, "*.yml").Order()) data.Add(file);
        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_parses_and_takes_its_coordinates_from_git(string path)
    {
        var loaded = new JobFileLoader(new FakeGit()).Load(path);
        Assert.Equal("acme/ephemeralci", loaded.File.Spec.Repository);
        Assert.NotEmpty(loaded.File.Spec.Steps!);
        Assert.All(loaded.File.Spec.Steps!, s => Assert.False(string.IsNullOrWhiteSpace(s.Run)));
    }

    [Fact]
    public void All_examples_are_there() => Assert.Equal(
        ["build-this-repository.yml", "ccache-remote.yml", "dependency-cache.yml", "failing-step.yml", "hello-world.yml", "with-secret.yml"],
        ((IEnumerable<object[]>)Examples()).Select(row => Path.GetFileName((string)row[0])).ToArray());
}
