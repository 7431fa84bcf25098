using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// `eci gitlab config|prepare|run|cleanup` driven as gitlab-runner's custom executor drives it — a process per stage,
/// the job's variables as CUSTOM_ENV_*, generated script files, BUILD_/SYSTEM_FAILURE_EXIT_CODE — against the
/// all-in-one server. No gitlab-runner runs here: the stages, environment and script shape are gitlab-runner's as documented.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class GitLabDriverTests(ServerFixture server) : IDisposable
{
    private const int BuildFailure = 42;
    private const int SystemFailure = 43;
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-gitlab-e2e-").FullName;
    private readonly string _jobId = Random.Shared.NextInt64(1_000_000, 9_999_999).ToString();

    private static string EciDll =>
        typeof(GitLabDriverTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EciDll").Value!;

    [Fact]
    public async Task A_gitlab_job_runs_its_stages_in_one_fresh_runner_and_cleanup_destroys_it()
    {
        var (configCode, configJson, _) = await EciAsync("config");
        Assert.Equal(0, configCode);
        using (var config = JsonDocument.Parse(configJson))
        {
            Assert.Equal("/workspace/builds", config.RootElement.GetProperty("builds_dir").GetString());
            Assert.Equal("EphemeralCI", config.RootElement.GetProperty("driver").GetProperty("name").GetString());
        }

        var (prepareCode, prepareOut, prepareErr) = await EciAsync("prepare");
        Assert.True(prepareCode == 0, $"prepare exited {prepareCode}\n{prepareOut}\n{prepareErr}");
        var sessionId = SessionIdFromState();

        // Each stage is its own process and its own command; the files stay in the runner between them.
        await AssertStageAsync("prepare_script", "echo prepared", 0);
        await AssertStageAsync("get_sources", "mkdir -p \"$CI_PROJECT_DIR\" && cd \"$CI_PROJECT_DIR\" && echo 'source v1' > src.txt", 0);
        var build = await AssertStageAsync("build_script", "cd \"$CI_PROJECT_DIR\" && echo \"built from $(cat src.txt)\" | tee out.txt", 0);
        Assert.Contains("built from source v1", build);
        var custom = await AssertStageAsync("a_stage_gitlab_adds_later", "cd \"$CI_PROJECT_DIR\" && cat out.txt", 0);
        Assert.Contains("built from source v1", custom);

        var (cleanupCode, cleanupOut, cleanupErr) = await EciAsync("cleanup");
        Assert.True(cleanupCode == 0, $"cleanup exited {cleanupCode}\n{cleanupOut}\n{cleanupErr}");
        Assert.Empty(Directory.GetFiles(StateDir));
        Assert.Equal("cancelled", (await server.Intake.WaitForTerminalAsync(sessionId)).GetProperty("status").GetString());
        await server.WaitForVerifiedRunnerEndAsync(sessionId);
        await RunnerTraces.AssertGoneAsync(sessionId, server.RunnerWorkRoot);
    }

    [Fact]
    public async Task A_failing_build_script_is_a_build_failure_and_a_missing_session_a_system_failure()
    {
        // No prepare yet: there is no session, which is the infrastructure's failure, not the script's.
        await AssertStageAsync("build_script", "echo never", SystemFailure);

        Assert.Equal(0, (await EciAsync("prepare")).Code);
        var sessionId = SessionIdFromState();
        var output = await AssertStageAsync("build_script", "echo 'compiling'; false; echo 'not reached'", BuildFailure);
        Assert.Contains("compiling", output);
        Assert.DoesNotContain("not reached", output);
        // after_script still runs in the same runner after a failure, as GitLab does.
        await AssertStageAsync("after_script", "echo after", 0);

        Assert.Equal(0, (await EciAsync("cleanup")).Code);
        await server.WaitForVerifiedRunnerEndAsync(sessionId);
        await RunnerTraces.AssertGoneAsync(sessionId, server.RunnerWorkRoot);
        // A second cleanup (gitlab-runner may retry it) has nothing left to do.
        Assert.Equal(0, (await EciAsync("cleanup")).Code);
    }

    private string StateDir => Path.Combine(_dir, "state");

    private Guid SessionIdFromState()
    {
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(StateDir, $"{_jobId}.json")));
        return state.RootElement.GetProperty("sessionId").GetGuid();
    }

    /// <summary>Writes the stage's script as gitlab-runner generates it for bash (variables exported, the body eval'd), runs it, checks the exit code.</summary>
    private async Task<string> AssertStageAsync(string stage, string body, int expectedCode)
    {
        var script = Path.Combine(_dir, $"script-{stage}");
        var escaped = new StringBuilder();
        foreach (var c in $"export CI_PROJECT_DIR=/workspace/builds/acme/widgets\necho $'\\x1b[32;1m$ {stage}\\x1b[0;m'\n{body}\n")
            escaped.Append(c switch { '\'' => "\\'", '\\' => "\\\\", '\n' => "\\n", _ => c.ToString() });
        await File.WriteAllTextAsync(script, $"#!/usr/bin/env bash\n\nset -eo pipefail\nset +o noclobber\n: | eval $'{escaped}'\nexit 0\n");
        var (code, stdout, stderr) = await EciAsync("run", script, stage);
        Assert.True(code == expectedCode, $"stage {stage} exited {code}, expected {expectedCode}\n{stdout}\n{stderr}");
        return stdout;
    }

    private async Task<(int Code, string StdOut, string StdErr)> EciAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        start.ArgumentList.Add(EciDll);
        start.ArgumentList.Add("gitlab");
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment["ECI_SERVER"] = server.BaseAddress.ToString();
        start.Environment["ECI_API_KEY"] = ServerFixture.AdminKey;
        start.Environment["ECI_CONFIG"] = Path.Combine(_dir, "config.json");
        start.Environment["ECI_GITLAB_STATE_DIR"] = StateDir;
        start.Environment["NO_COLOR"] = "1";
        start.Environment["BUILD_FAILURE_EXIT_CODE"] = BuildFailure.ToString();
        start.Environment["SYSTEM_FAILURE_EXIT_CODE"] = SystemFailure.ToString();
        start.Environment["CUSTOM_ENV_CI_JOB_ID"] = _jobId;
        start.Environment["CUSTOM_ENV_CI_JOB_NAME"] = "build";
        start.Environment["CUSTOM_ENV_CI_PROJECT_PATH"] = "acme/widgets";
        start.Environment["CUSTOM_ENV_CI_COMMIT_REF_NAME"] = "main";
        start.Environment["CUSTOM_ENV_CI_COMMIT_SHA"] = "0123456789abcdef0123456789abcdef01234567";
        start.Environment["CUSTOM_ENV_CI_RUNNER_TAGS"] = "[\"linux\", \"eci:default\"]";
        start.Environment["CUSTOM_ENV_CI_JOB_TIMEOUT"] = "300";
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
