using System.ComponentModel;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Configuration;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class JobsVerifySettings : ServerSettings
{
    [CommandArgument(0, "[ID]")]
    [Description("The job whose attestation to fetch and check (or give --file)")]
    public Guid? Id { get; set; }

    [CommandOption("--file <ENVELOPE>")]
    [Description("Check this saved DSSE envelope instead of fetching one (offline with --jwks)")]
    public string? File { get; set; }

    [CommandOption("--jwks <FILE|URL>")]
    [Description("The public keys: a JWKS file or URL (default: the secrets broker's /.well-known/attestation-keys.json, every key that ever signed)")]
    public string? Jwks { get; set; }

    [CommandOption("--secrets-server <URL>")]
    [Description("The secrets broker whose JWKS to fetch (default: as `eci secrets` resolves it, else the server)")]
    public string? SecretsServer { get; set; }

    [CommandOption("--repository <OWNER/NAME>")]
    [Description("Also require the attestation to be of this repository")]
    public string? Repository { get; set; }

    [CommandOption("--commit <SHA>")]
    [Description("Also require the attestation to be of this commit")]
    public string? Commit { get; set; }

    public override ValidationResult Validate() =>
        (Id is null) == (File is null)
            ? ValidationResult.Error("Give a job ID, or --file ENVELOPE (not both).")
            : ValidationResult.Success();
}

/// <summary>
/// <c>eci jobs verify</c>: the job's attestation (fetched, or from a file) against the broker's
/// public keys (fetched, or from a file): ES256 signature over DSSE's PAE by the key the envelope
/// names, the subject (the job's repository and commit; online also the job's id), and the
/// runner's teardown check. Exit 0 when valid, 6 when not.
/// </summary>
public sealed class JobsVerifyCommand(EciContext context) : EciCommand<JobsVerifySettings>(context)
{
    protected override async Task<int> RunAsync(JobsVerifySettings settings, CancellationToken ct)
    {
        DsseEnvelope envelope;
        var expected = new ExpectedSubject(Repository: settings.Repository, CommitSha: settings.Commit);
        if (settings.File is { } file)
        {
            envelope = ReadJson<DsseEnvelope>(file, "a DSSE envelope");
        }
        else
        {
            using var api = Connect(settings);
            var job = (await api.GetJobAsync(settings.Id!.Value, ct)).Value;
            envelope = (await api.GetAttestationAsync(settings.Id.Value, ct)).Value;
            // What the API says of the job must be what the attestation says.
            expected = expected with { JobId = job.Id, Repository = settings.Repository ?? job.Repository, CommitSha = settings.Commit ?? job.CommitSha };
        }
        var jwks = await LoadJwksAsync(settings, ct);
        var result = AttestationVerifier.Verify(envelope, jwks, expected);

        if (settings.Json) WriteJson(JsonSerializer.Serialize(new { valid = result.Valid, keyId = result.KeyId, jobId = result.JobId, problems = result.Problems, statement = result.Statement }, EciApiClient.Json));
        else Summarize(result);
        return result.Valid ? ExitCodes.Success : ExitCodes.Invalid;
    }

    private async Task<JsonWebKeySet> LoadJwksAsync(JobsVerifySettings settings, CancellationToken ct)
    {
        if (settings.Jwks is { } jwks && !jwks.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !jwks.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            return ReadJson<JsonWebKeySet>(jwks, "a JSON Web Key Set");
        }
        Uri url;
        if (settings.Jwks is { } given) url = new Uri(given);
        else
        {
            var resolved = new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, settings.Server, secretsServerOption: settings.SecretsServer);
            var server = resolved.Secrets.Server ?? resolved.Server
                ?? throw new CliException("No server to fetch the public keys from.", ExitCodes.Usage,
                    ["Pass --jwks FILE|URL, or configure the server (`eci config set --server URL`)."]);
            url = new Uri(ConfigStore.ParseServer(server), ".well-known/attestation-keys.json");
        }
        using var broker = new EciApiClient(new Uri(url.GetLeftPart(UriPartial.Authority) + "/"), null, Context.HttpHandler, ApiTarget.SecretsBroker);
        var set = (await broker.GetJwksAsync(url.PathAndQuery.TrimStart('/'), ct)).Value;
        return set.Keys is null ? throw new CliException($"{url} did not answer with a JSON Web Key Set.", ExitCodes.Unreachable) : set;
    }

    private T ReadJson<T>(string path, string what)
    {
        var full = Path.IsPathRooted(path) ? path : Path.Combine(Context.WorkingDirectory, path);
        try
        {
            return JsonSerializer.Deserialize<T>(System.IO.File.ReadAllText(full), EciApiClient.Json)
                ?? throw new CliException($"{path} is empty.", ExitCodes.Usage);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"Cannot read {path}: {ex.Message}", ExitCodes.Usage);
        }
        catch (JsonException ex)
        {
            throw new CliException($"{path} is not {what}: {ex.Message}", ExitCodes.Usage);
        }
    }

    private void Summarize(AttestationVerification result)
    {
        var o = Context.Out;
        o.MarkupLine(result.Valid
            ? $"[green]valid[/] attestation of job [bold]{Markup.Escape(result.JobId ?? "?")}[/]"
            : $"[red]NOT VALID[/]: attestation of job [bold]{Markup.Escape(result.JobId ?? "?")}[/]");
        if (result.Statement?.Predicate is { } p)
        {
            var ext = p.BuildDefinition.ExternalParameters;
            var grid = new Grid().AddColumn().AddColumn();
            void Row(string name, string value) => grid.AddRow($"[bold]{name}[/]", Markup.Escape(value));
            Row("signed by", result.KeyId is { } kid ? $"key {kid}" : "no valid signature");
            Row("subject", $"{ext.Repository} @ {ext.CommitSha} ({ext.Ref})");
            Row("outcome", $"{p.Outcome.Status}" + (p.Outcome.ExitCode is { } code ? $", exit code {code}" : ""));
            Row("runner", $"{p.Runner.Id} on {p.Runner.Backend}, template {p.Runner.Template.Name} {p.Runner.Template.Digest}");
            Row("teardown", p.Teardown is { } t
                ? $"{(t.Passed ? "verified gone" : "LEFTOVERS")} ({t.Checks.Count} checks, {t.Attempts} attempt{(t.Attempts == 1 ? "" : "s")})"
                : "not verified");
            if (p.EarlierAttempts is { Count: > 0 } earlier)
            {
                Row("earlier attempts", string.Join("; ", earlier.Select(a =>
                    $"{a.Attempt}: {a.RunnerId} lost ({a.Reason ?? "no reason given"}), {(a.Teardown?.Passed == true ? "verified gone" : "NOT verified gone")}")));
            }
            Row("secrets", p.Secrets is { Count: > 0 } s
                ? string.Join(", ", s.Select(x => $"{x.Name} v{x.Version?.ToString() ?? "?"}" + (x.RevokedAt is { } r ? $" (revoked {Render.Time(r)})" : "")))
                : "none");
            Row("caches", $"{p.Caches.Restored.Count(c => c.Sha256 is not null)} restored, {p.Caches.Saved.Count(c => c.Sha256 is not null)} saved"
                + (p.Caches.RecordedBy == EphemeralCI.Attestations.JobCaches.ByCache ? " (as the cache recorded serving them)" : " (as the runner reported them)"));
            Row("lifecycle", $"created {Render.Time(p.Lifecycle.CreatedAt)}, destroyed {(p.Lifecycle.DestroyedAt is { } d ? Render.Time(d) : "?")}");
            o.Write(grid);
        }
        foreach (var problem in result.Problems) o.MarkupLine($"  [red]✗[/] {Markup.Escape(problem)}");
    }
}
