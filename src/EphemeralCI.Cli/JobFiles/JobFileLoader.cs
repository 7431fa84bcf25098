using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.Cli.JobFiles;

/// <summary>
/// Reads a job file from disk and fills in what the file leaves out: repository, ref and commit
/// from the git checkout that holds the file (origin remote, HEAD's branch, HEAD's commit), and
/// the default runner template.
/// </summary>
public sealed class JobFileLoader(IGitCheckout git)
{
    public sealed record Loaded(ParsedJobFile File, string Text, IReadOnlyList<string> FromGit);

    public Loaded Load(string path)
    {
        var display = path;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"Cannot read the job file {display}: {ex.Message}", ExitCodes.Usage);
        }
        var parsed = JobFileParser.Parse(text, display);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var (withDefaults, fromGit) = ApplyDefaults(parsed, directory);
        return new Loaded(withDefaults, text, fromGit);
    }

    public (ParsedJobFile File, IReadOnlyList<string> FromGit) ApplyDefaults(ParsedJobFile parsed, string directory)
    {
        var spec = parsed.Spec;
        var fromGit = new List<string>();
        var errors = new List<JobFileError>();
        if (spec.Repository is null || spec.Ref is null || spec.CommitSha is null)
        {
            var facts = git.Read(directory);
            string? Missing(string field, string? value, string why)
            {
                if (value is not null)
                {
                    fromGit.Add(field);
                    return value;
                }
                errors.Add(new JobFileError(parsed.File, 1, 1, $"missing field `{field}`, and it cannot be taken from git: {why}; write it in the job file"));
                return null;
            }
            if (facts is null)
            {
                foreach (var (field, value) in new[] { ("repository", spec.Repository), ("ref", spec.Ref), ("commitSha", spec.CommitSha) })
                {
                    if (value is null) errors.Add(new JobFileError(parsed.File, 1, 1, $"missing field `{field}`, and {directory} is not inside a git checkout to take it from"));
                }
            }
            else
            {
                spec = spec with
                {
                    Repository = spec.Repository ?? Missing("repository", GitCommandLine.RepositoryFromRemote(facts.OriginUrl),
                        facts.OriginUrl is null ? "the checkout has no `origin` remote" : $"origin ({facts.OriginUrl}) does not name an owner/name repository"),
                    Ref = spec.Ref ?? Missing("ref", facts.HeadRef, "HEAD is detached (not on a branch)"),
                    CommitSha = spec.CommitSha ?? Missing("commitSha", facts.HeadSha, "the checkout has no commit yet"),
                };
            }
        }
        if (errors.Count > 0) throw new JobFileException(errors);
        spec = spec with { RunnerTemplate = spec.RunnerTemplate ?? RunnerTemplateDefinition.DefaultName };
        return (parsed with { Spec = spec }, fromGit);
    }
}
