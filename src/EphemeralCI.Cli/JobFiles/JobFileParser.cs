using System.Globalization;
using EphemeralCI.Contracts.Jobs;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EphemeralCI.Cli.JobFiles;

/// <summary>A job file read into a <see cref="JobSpec"/>, with where each field was written so the server's field errors can point back into the file.</summary>
public sealed record ParsedJobFile(string File, JobSpec Spec, IReadOnlyDictionary<string, (int Line, int Column)> Positions)
{
    /// <summary>Turns a server error on a JSON path ("steps[1].run") into a file:line:col error, using the nearest field written in the file.</summary>
    public JobFileError Locate(string field, string message)
    {
        // Falls back to the enclosing field, and finally to "" (the document itself).
        for (var path = field; ; path = Parent(path))
        {
            if (Positions.TryGetValue(path, out var at)) return new JobFileError(File, at.Line, at.Column, $"{field}: {message}");
            if (path.Length == 0) return new JobFileError(File, null, null, $"{field}: {message}");
        }
    }

    private static string Parent(string path)
    {
        var cut = Math.Max(path.LastIndexOf('.'), path.LastIndexOf('['));
        return cut <= 0 ? "" : path[..cut];
    }
}

/// <summary>
/// Reads the YAML job format (docs/job-file.md) through YamlDotNet's node model rather than a
/// deserializer, so that every unknown field, wrong type and missing value is reported with its
/// own line and column, all at once. Pure: no file or git access (see <see cref="JobFileLoader"/>).
/// </summary>
public static class JobFileParser
{
    public static readonly IReadOnlyList<string> TopLevelFields =
        ["name", "repository", "ref", "commitSha", "commit", "runnerTemplate", "template", "environment", "timeoutSeconds", "timeout", "env", "secrets", "caches", "checkout", "retry", "steps"];
    private static readonly string[] StepFields = ["name", "run", "env"];
    private static readonly string[] CacheFields = ["key", "restoreKeys", "paths"];
    private static readonly string[] CheckoutFields = ["depth", "submodules", "lfs", "path"];
    private static readonly string[] RetryFields = ["infrastructure"];

    public static ParsedJobFile Parse(string text, string file)
    {
        var walker = new Walker(file);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            // YamlDotNet's messages start with "(Line: 3, Col: 5, Idx: ...) - (...): "; the position goes in front instead.
            var message = ex.InnerException is YamlException inner && inner.Message != ex.Message ? inner.Message : ex.Message;
            var cut = message.IndexOf("): ", StringComparison.Ordinal);
            if (message.StartsWith("(Line:", StringComparison.Ordinal) && cut > 0) message = message[(cut + 3)..];
            throw new JobFileException([new JobFileError(file, (int)ex.Start.Line, (int)ex.Start.Column, $"YAML syntax: {message}")]);
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
        {
            throw new JobFileException([new JobFileError(file, 1, 1, "the file is empty; a job needs at least `steps:`")]);
        }
        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            walker.Error(second, "a job file holds one job; remove the second `---` document");
        }

        var spec = walker.Job(stream.Documents[0].RootNode);
        if (walker.Errors.Count > 0) throw new JobFileException(walker.Errors);
        return new ParsedJobFile(file, spec, walker.Positions);
    }

    private sealed class Walker(string file)
    {
        public List<JobFileError> Errors { get; } = [];
        public Dictionary<string, (int Line, int Column)> Positions { get; } = new(StringComparer.Ordinal);

        public void Error(YamlNode node, string message) => Errors.Add(new JobFileError(file, (int)node.Start.Line, (int)node.Start.Column, message));

        private void Mark(string path, YamlNode node) => Positions.TryAdd(path, ((int)node.Start.Line, (int)node.Start.Column));

        public JobSpec Job(YamlNode root)
        {
            Mark("", root);
            if (root is not YamlMappingNode map)
            {
                Error(root, "a job file must be a mapping of fields (name:, steps:, ...), not " + Describe(root));
                return new JobSpec();
            }
            var fields = Fields(map, TopLevelFields, "");
            Exclusive(fields, "commitSha", "commit");
            Exclusive(fields, "runnerTemplate", "template");
            Exclusive(fields, "timeoutSeconds", "timeout");

            int? timeout = null;
            if (fields.TryGetValue("timeoutSeconds", out var ts)) timeout = Seconds(ts, "timeoutSeconds", durationAllowed: false);
            else if (fields.TryGetValue("timeout", out var t)) timeout = Seconds(t, "timeoutSeconds", durationAllowed: true);

            var steps = fields.TryGetValue("steps", out var s) ? Steps(s) : null;
            if (!fields.ContainsKey("steps"))
            {
                Error(map, "missing field `steps`: a job needs at least one step (`steps: [{ run: ... }]`)");
            }

            return new JobSpec
            {
                Name = Text(fields, "name", "name"),
                Repository = Text(fields, "repository", "repository"),
                Ref = Text(fields, "ref", "ref"),
                CommitSha = Text(fields, "commitSha", "commitSha") ?? Text(fields, "commit", "commitSha"),
                RunnerTemplate = Text(fields, "runnerTemplate", "runnerTemplate") ?? Text(fields, "template", "runnerTemplate"),
                Environment = Text(fields, "environment", "environment"),
                TimeoutSeconds = timeout,
                Env = fields.TryGetValue("env", out var env) ? Env(env, "env") : null,
                Secrets = fields.TryGetValue("secrets", out var secrets) ? TextList(secrets, "secrets", allowSingle: false) : null,
                Caches = fields.TryGetValue("caches", out var caches) ? Caches(caches) : null,
                Checkout = fields.TryGetValue("checkout", out var checkout) ? Checkout(checkout) : null,
                Retry = fields.TryGetValue("retry", out var retry) ? Retry(retry) : null,
                Steps = steps,
            };
        }

        private List<StepSpec>? Steps(YamlNode node)
        {
            if (node is not YamlSequenceNode seq)
            {
                Error(node, "`steps` must be a list of steps (`- run: ...`), not " + Describe(node));
                return null;
            }
            if (seq.Children.Count == 0) Error(node, "`steps` must contain at least one step");
            var steps = new List<StepSpec>();
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var path = $"steps[{i}]";
                var item = seq.Children[i];
                Mark(path, item);
                // `- echo hi` is a step with only a script.
                if (item is YamlScalarNode scalar && !IsNull(scalar))
                {
                    Mark($"{path}.run", item);
                    steps.Add(new StepSpec { Run = scalar.Value });
                    continue;
                }
                if (item is not YamlMappingNode map)
                {
                    Error(item, $"{path} must be a step (`run: ...`, optionally `name:` and `env:`), not {Describe(item)}");
                    continue;
                }
                var fields = Fields(map, StepFields, path + ".");
                var run = Text(fields, "run", $"{path}.run");
                if (string.IsNullOrWhiteSpace(run))
                {
                    if (fields.TryGetValue("run", out var runNode)) Error(runNode, $"{path}.run must not be empty");
                    else Error(map, $"missing field `run` in {path}: the bash script the step runs");
                }
                steps.Add(new StepSpec
                {
                    Name = Text(fields, "name", $"{path}.name"),
                    Run = run,
                    Env = fields.TryGetValue("env", out var env) ? Env(env, $"{path}.env") : null,
                });
            }
            return steps;
        }

        /// <summary><c>checkout: false | true | {depth, submodules, lfs, path}</c>; ranges are the server's to check.</summary>
        private CheckoutSpec? Checkout(YamlNode node)
        {
            Mark("checkout", node);
            if (node is YamlScalarNode flag && !IsNull(flag))
            {
                if (flag.Value is "false") return CheckoutSpec.Skip;
                if (flag.Value is "true") return CheckoutSpec.Default;
            }
            if (node is not YamlMappingNode map)
            {
                Error(node, "`checkout` must be false, true or a mapping (`depth:`, `submodules:`, `lfs:`, `path:`), not " + Describe(node));
                return null;
            }
            var fields = Fields(map, CheckoutFields, "checkout.");
            int? depth = null;
            if (fields.TryGetValue("depth", out var d))
            {
                Mark("checkout.depth", d);
                if (d is YamlScalarNode ds && int.TryParse(ds.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)) depth = value;
                else Error(d, "`checkout.depth` must be a whole number (1 = the commit only, 0 = the full history), not " + Describe(d));
            }
            bool? lfs = null;
            if (fields.TryGetValue("lfs", out var l))
            {
                Mark("checkout.lfs", l);
                if (l is YamlScalarNode { Value: "true" or "false" } ls) lfs = ls.Value == "true";
                else Error(l, "`checkout.lfs` must be true or false, not " + Describe(l));
            }
            return new CheckoutSpec
            {
                Depth = depth,
                Submodules = Text(fields, "submodules", "checkout.submodules"),
                Lfs = lfs,
                Path = Text(fields, "path", "checkout.path"),
            };
        }

        private RetrySpec? Retry(YamlNode node)
        {
            Mark("retry", node);
            if (node is not YamlMappingNode map)
            {
                Error(node, "`retry` must be a mapping (`infrastructure: 2`), not " + Describe(node));
                return null;
            }
            var fields = Fields(map, RetryFields, "retry.");
            int? infrastructure = null;
            if (fields.TryGetValue("infrastructure", out var n))
            {
                Mark("retry.infrastructure", n);
                if (n is YamlScalarNode ns && int.TryParse(ns.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)) infrastructure = value;
                else Error(n, "`retry.infrastructure` must be a whole number (0 to 3: how often a job whose runner was lost starts again), not " + Describe(n));
            }
            return new RetrySpec { Infrastructure = infrastructure };
        }

        private List<CacheSpec>? Caches(YamlNode node)
        {
            if (node is not YamlSequenceNode seq)
            {
                Error(node, "`caches` must be a list (`- key: ...`), not " + Describe(node));
                return null;
            }
            var caches = new List<CacheSpec>();
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var path = $"caches[{i}]";
                var item = seq.Children[i];
                Mark(path, item);
                if (item is not YamlMappingNode map)
                {
                    Error(item, $"{path} must be a mapping with `key:` and `paths:`, not {Describe(item)}");
                    continue;
                }
                var fields = Fields(map, CacheFields, path + ".");
                var key = Text(fields, "key", $"{path}.key");
                if (string.IsNullOrWhiteSpace(key) && !fields.ContainsKey("key")) Error(map, $"missing field `key` in {path}");
                var paths = fields.TryGetValue("paths", out var p) ? TextList(p, $"{path}.paths", allowSingle: true) : null;
                if (!fields.ContainsKey("paths")) Error(map, $"missing field `paths` in {path}: the folders to save and restore");
                caches.Add(new CacheSpec
                {
                    Key = key,
                    RestoreKeys = fields.TryGetValue("restoreKeys", out var r) ? TextList(r, $"{path}.restoreKeys", allowSingle: true) : null,
                    Paths = paths,
                });
            }
            return caches;
        }

        private Dictionary<string, string>? Env(YamlNode node, string path)
        {
            if (node is not YamlMappingNode map)
            {
                Error(node, $"`{path}` must be a mapping of NAME: value, not {Describe(node)}");
                return null;
            }
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (keyNode, valueNode) in map.Children)
            {
                if (keyNode is not YamlScalarNode { Value: { Length: > 0 } name })
                {
                    Error(keyNode, $"`{path}` names must be plain text");
                    continue;
                }
                Mark($"{path}.{name}", keyNode);
                if (valueNode is not YamlScalarNode value)
                {
                    Error(valueNode, $"{path}.{name} must be a text value, not {Describe(valueNode)}");
                    continue;
                }
                if (IsNull(value))
                {
                    Error(valueNode, $"{path}.{name} has no value; write \"\" for an empty one");
                    continue;
                }
                env[name] = value.Value!;
            }
            return env;
        }

        private List<string>? TextList(YamlNode node, string path, bool allowSingle)
        {
            Mark(path, node);
            if (allowSingle && node is YamlScalarNode single && !IsNull(single)) return [single.Value!];
            if (node is not YamlSequenceNode seq)
            {
                Error(node, $"`{path}` must be a list of text values, not {Describe(node)}");
                return null;
            }
            var list = new List<string>();
            for (var i = 0; i < seq.Children.Count; i++)
            {
                var item = seq.Children[i];
                Mark($"{path}[{i}]", item);
                if (item is YamlScalarNode s && !IsNull(s)) list.Add(s.Value!);
                else Error(item, $"{path}[{i}] must be a text value, not {Describe(item)}");
            }
            return list;
        }

        private int? Seconds(YamlNode node, string path, bool durationAllowed)
        {
            Mark(path, node);
            var example = durationAllowed ? "a duration like 90s, 10m or 1h30m" : "a whole number of seconds (or use `timeout: 10m`)";
            if (node is YamlScalarNode s && !IsNull(s))
            {
                if (durationAllowed ? Durations.TryParseSeconds(s.Value!, out var seconds)
                    : int.TryParse(s.Value, NumberStyles.None, CultureInfo.InvariantCulture, out seconds))
                {
                    if (seconds >= 1) return seconds;
                    Error(node, "the timeout must be at least 1 second");
                    return null;
                }
            }
            Error(node, $"`{(durationAllowed ? "timeout" : "timeoutSeconds")}` must be {example}, not {Describe(node)}");
            return null;
        }

        private string? Text(Dictionary<string, YamlNode> fields, string name, string path)
        {
            if (!fields.TryGetValue(name, out var node)) return null;
            Mark(path, node);
            if (node is YamlScalarNode s) return IsNull(s) ? null : s.Value;
            Error(node, $"`{name}` must be a text value, not {Describe(node)}");
            return null;
        }

        /// <summary>The known fields of a mapping; unknown ones are errors, with a suggestion when one is close.</summary>
        private Dictionary<string, YamlNode> Fields(YamlMappingNode map, IReadOnlyList<string> known, string pathPrefix)
        {
            var fields = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var (keyNode, value) in map.Children)
            {
                if (keyNode is not YamlScalarNode { Value: { } key })
                {
                    Error(keyNode, "field names must be plain text");
                    continue;
                }
                if (!known.Contains(key, StringComparer.Ordinal))
                {
                    var hint = known.FirstOrDefault(k => Distance(Normalize(k), Normalize(key)) <= 2);
                    Error(keyNode, hint is not null
                        ? $"unknown field `{pathPrefix}{key}`; did you mean `{hint}`?"
                        : $"unknown field `{pathPrefix}{key}`; known fields here: {string.Join(", ", known)}");
                    continue;
                }
                Mark(pathPrefix + key, keyNode);
                fields[key] = value;
            }
            return fields;
        }

        private void Exclusive(Dictionary<string, YamlNode> fields, string a, string b)
        {
            if (fields.ContainsKey(a) && fields.TryGetValue(b, out var second))
            {
                Error(second, $"`{b}` and `{a}` are the same field; write only one of them");
            }
        }

        /// <summary>Levenshtein distance, for "did you mean": field names are short, so the simple table is fine.</summary>
        private static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (var j = 0; j <= b.Length; j++) d[0, j] = j;
            for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }

        private static string Normalize(string name) => name.Replace("_", "").Replace("-", "").ToLowerInvariant();

        private static bool IsNull(YamlScalarNode s) =>
            s.Style == YamlDotNet.Core.ScalarStyle.Plain && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

        private static string Describe(YamlNode node) => node switch
        {
            YamlSequenceNode => "a list",
            YamlMappingNode => "a mapping",
            YamlScalarNode s when IsNull(s) => "an empty value",
            YamlScalarNode s => $"'{s.Value}'",
            _ => "this",
        };
    }
}
