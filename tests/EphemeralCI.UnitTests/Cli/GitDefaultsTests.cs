using System.Diagnostics;
using EphemeralCI.Cli.JobFiles;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

public sealed class GitDefaultsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-git-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void Git(params string[] args)
    {
        var start = new ProcessStartInfo("git") { WorkingDirectory = _dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["GIT_AUTHOR_NAME"] = start.Environment["GIT_COMMITTER_NAME"] = "t";
        start.Environment["GIT_AUTHOR_EMAIL"] = start.Environment["GIT_COMMITTER_EMAIL"] = "t@example.com";
        using var p = Process.Start(start)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"git {string.Join(' ', args)}: {err}");
    }

    private string Head()
    {
        var start = new ProcessStartInfo("git", "rev-parse HEAD") { WorkingDirectory = _dir, RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        var sha = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return sha;
    }

    private string WriteJob(string yaml)
    {
        var path = Path.Combine(_dir, "job.yml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private void Commit()
    {
        Git("init", "-q", "-b", "feature/x");
        Git("remote", "add", "origin", "git@github.com:acme/widgets.git");
        Git("add", ".");
        Git("commit", "-q", "-m", "first");
    }

    [Fact]
    public void Repository_ref_and_commit_come_from_the_checkout_holding_the_file()
    {
        var path = WriteJob("steps: [echo hi]\n");
        Commit();

        var loaded = new JobFileLoader(new GitCommandLine()).Load(path);

        Assert.Equal("acme/widgets", loaded.File.Spec.Repository);
        Assert.Equal("refs/heads/feature/x", loaded.File.Spec.Ref);
        Assert.Equal(Head(), loaded.File.Spec.CommitSha);
        Assert.Equal("default", loaded.File.Spec.RunnerTemplate);
        Assert.Equal(["repository", "ref", "commitSha"], loaded.FromGit);
    }

    [Fact]
    public void Fields_written_in_the_file_win_over_git()
    {
        var path = WriteJob("repository: other/repo\nref: refs/tags/v1\nsteps: [echo hi]\n");
        Commit();

        var loaded = new JobFileLoader(new GitCommandLine()).Load(path);

        Assert.Equal("other/repo", loaded.File.Spec.Repository);
        Assert.Equal("refs/tags/v1", loaded.File.Spec.Ref);
        Assert.Equal(["commitSha"], loaded.FromGit);
    }

    [Fact]
    public void A_detached_head_cannot_give_a_ref()
    {
        var path = WriteJob("steps: [echo hi]\n");
        Commit();
        Git("checkout", "-q", "--detach");

        var ex = Assert.Throws<JobFileException>(() => new JobFileLoader(new GitCommandLine()).Load(path));
        Assert.Contains("HEAD is detached", Assert.Single(ex.Errors).Message);
    }

    [Fact]
    public void Outside_a_checkout_each_missing_field_is_named()
    {
        var path = WriteJob("steps: [echo hi]\n");
        var ex = Assert.Throws<JobFileException>(() => new JobFileLoader(new GitCommandLine()).Load(path));
        Assert.Equal(3, ex.Errors.Count);
        Assert.All(ex.Errors, e => Assert.Contains("not inside a git checkout", e.Message));
    }

    [Theory]
    [InlineData("https://github.com/acme/widgets.git", "acme/widgets")]
    [InlineData("https://github.com/acme/widgets", "acme/widgets")]
    [InlineData("https://user@gitlab.example.com/group/sub/proj.git", "group/sub/proj")]
    [InlineData("ssh://git@github.com:22/acme/widgets.git", "acme/widgets")]
    [InlineData("git@github.com:acme/widgets.git", "acme/widgets")]
    [InlineData("/srv/git/widgets.git", null)]
    [InlineData("file:///srv/git/acme/widgets.git", null)]
    [InlineData("https://github.com/widgets", null)]
    [InlineData("", null)]
    public void Repository_is_read_from_the_origin_url(string url, string? expected) =>
        Assert.Equal(expected, GitCommandLine.RepositoryFromRemote(url));
}
