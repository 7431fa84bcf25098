using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.JobTokens;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>
/// The real runner agent process against the real broker (Kestrel, Postgres, Redis) and a minimal
/// intake that checks job tokens the way the real intake does once the broker issues them: through
/// the broker's JWKS (<c>JobTokens:Authority</c>).
/// </summary>
public sealed class AgentSecretsTests : IAsyncLifetime
{
    private const string Value = "d3ploy-S3cret/xyz+Q==";
    private BrokerTestApp _broker = null!;
    private WebApplication _intake = null!;
    private readonly ConcurrentDictionary<long, byte[]> _log = new();
    private readonly TaskCompletionSource<RunnerCompletion> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private JobSpec _spec = null!;

    public async Task InitializeAsync()
    {
        _broker = await BrokerTestApp.StartAsync(overKestrel: true);
        await _broker.PutSecretAsync("DEPLOY_KEY", Value, ["acme/*"], ["refs/heads/main"]);
        await _broker.PutSecretAsync("OTHER", "other-value-123", ["globex/*"], ["**"]);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration["JobTokens:Authority"] = _broker.Client.BaseAddress!.ToString();
        builder.AddJobTokens();
        _intake = builder.Build();
        _intake.Use(async (ctx, next) =>
        {
            var token = JobTokenAuthenticationHandler.BearerToken(ctx.Request.Headers.Authorization.ToString());
            if (token is null || await ctx.RequestServices.GetRequiredService<JobTokenService>().ValidateAsync(token) is null)
            {
                ctx.Response.StatusCode = 401;
                return;
            }
            await next();
        });
        _intake.MapGet(RunnerApiRoutes.Job, () => Results.Ok(new RunnerJob(Guid.Empty, _spec)));
        _intake.MapPost(RunnerApiRoutes.Events, (RunnerStepEvent _) => Results.NoContent());
        _intake.MapPost(RunnerApiRoutes.Logs, async (HttpContext ctx, long offset) =>
        {
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body);
            _log[offset] = body.ToArray();
            return Results.NoContent();
        });
        _intake.MapPost(RunnerApiRoutes.Complete, (RunnerCompletion c) => { _completion.TrySetResult(c); return Results.NoContent(); });
        await _intake.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _intake.DisposeAsync();
        await _broker.DisposeAsync();
    }

    [Fact]
    public async Task Agent_gets_its_secrets_in_every_step_and_the_log_never_shows_them()
    {
        _spec = new JobSpec
        {
            Repository = "acme/widgets",
            Ref = "refs/heads/main",
            Secrets = ["DEPLOY_KEY", "OTHER"],
            Steps =
            [
                new StepSpec { Name = "use", Run = """
                    test "$DEPLOY_KEY" = 'd3ploy-S3cret/xyz+Q=='
                    echo "raw=$DEPLOY_KEY"
                    printf 'b64=%s\n' "$(printf '%s' "$DEPLOY_KEY" | base64 -w0)"
                    printf 'split=%s' "${DEPLOY_KEY:0:7}"; sleep 0.5; printf '%s\n' "${DEPLOY_KEY:7}"
                    echo "other=${OTHER:-unset}"
                    """ },
                new StepSpec { Name = "again", Run = "echo \"second=$DEPLOY_KEY\"" },
            ],
        };
        var jobId = Guid.NewGuid();
        var token = await _broker.MintAsync(jobId, repository: "acme/widgets", gitRef: "refs/heads/main");

        var (exitCode, stderr) = await RunAgentAsync(token);
        var completion = await _completion.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var log = Log();

        Assert.True(exitCode == 0, $"agent exit {exitCode}: {stderr}\n{log}");
        Assert.True(completion.Succeeded, log);
        Assert.Contains("raw=***", log);
        Assert.Contains("b64=***", log);
        Assert.Contains("split=***", log);
        Assert.Contains("second=***", log);
        Assert.Contains("other=unset", log);
        Assert.Contains("secret OTHER was not granted: repository-not-allowed", log);
        Assert.DoesNotContain(Value, log);
        Assert.DoesNotContain(Value[..12], log);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(Value)).TrimEnd('='), log);
        Assert.DoesNotContain(Value, stderr);

        // The agent spent the token: a thief holding it gets nothing.
        using var replay = await _broker.ExchangeAsync(token, "DEPLOY_KEY");
        Assert.Equal(HttpStatusCode.Conflict, replay.StatusCode);
    }

    private string Log() =>
        Encoding.UTF8.GetString(_log.OrderBy(kv => kv.Key).SelectMany(kv => kv.Value).ToArray());

    private async Task<(int ExitCode, string Stderr)> RunAgentAsync(string token)
    {
        var workspace = Directory.CreateTempSubdirectory("eci-agent-secrets-");
        try
        {
            var psi = new ProcessStartInfo(LocalSandboxOptions.ResolveDotnet(null))
            {
                RedirectStandardInput = true,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "runner-agent", SandboxCommandBuilder.AgentAssembly));
            psi.Environment[RunnerEnvironment.IntakeUrl] = _intake.Urls.First();
            psi.Environment[RunnerEnvironment.SecretsUrl] = _broker.Client.BaseAddress!.ToString();
            psi.Environment[RunnerEnvironment.Workspace] = workspace.FullName;
            using var process = Process.Start(psi)!;
            await process.StandardInput.WriteLineAsync(token);
            process.StandardInput.Close();
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await stderr + await stdout);
        }
        finally
        {
            workspace.Delete(recursive: true);
        }
    }
}
