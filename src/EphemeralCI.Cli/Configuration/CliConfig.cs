using System.Text.Json;
using System.Text.Json.Serialization;

namespace EphemeralCI.Cli.Configuration;

/// <summary>What `eci config set` stores: the intake and its API key, the secrets broker and the cache and their admin tokens.</summary>
public sealed record CliConfig
{
    [JsonPropertyName("server")] public string? Server { get; init; }
    [JsonPropertyName("apiKey")] public string? ApiKey { get; init; }
    [JsonPropertyName("secretsServer")] public string? SecretsServer { get; init; }
    [JsonPropertyName("secretsToken")] public string? SecretsToken { get; init; }
    [JsonPropertyName("cacheServer")] public string? CacheServer { get; init; }
    [JsonPropertyName("cacheToken")] public string? CacheToken { get; init; }
}

/// <summary>Where a setting came from. <see cref="ServerDefault"/>: the secrets broker or cache URL was not set, so the server's is used.</summary>
public enum ValueSource { None, ConfigFile, Environment, CommandLine, ServerDefault }

/// <summary>One admin API's address and credential, and where each came from.</summary>
public sealed record ResolvedService(string? Server, ValueSource ServerSource, string? Token, ValueSource TokenSource);

/// <summary>The server and key a command will use, and where each came from (shown by `eci config show`).</summary>
public sealed record ResolvedConfig(string? Server, ValueSource ServerSource, string? ApiKey, ValueSource ApiKeySource, string ConfigPath)
{
    public ResolvedService Secrets { get; init; } = new(null, ValueSource.None, null, ValueSource.None);
    public ResolvedService Cache { get; init; } = new(null, ValueSource.None, null, ValueSource.None);
}

/// <summary>
/// Reads and writes the config file. The file holds an API key, so it is created 0600 inside a
/// 0700 directory, and rewritten through a temporary file so a crash never leaves half a file.
/// </summary>
public sealed class ConfigStore(string path)
{
    public const string ServerVariable = "ECI_SERVER";
    public const string ApiKeyVariable = "ECI_API_KEY";
    public const string SecretsServerVariable = "ECI_SECRETS_SERVER";
    public const string SecretsTokenVariable = "ECI_SECRETS_TOKEN";
    public const string CacheServerVariable = "ECI_CACHE_SERVER";
    public const string CacheTokenVariable = "ECI_CACHE_TOKEN";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public string Path => path;

    public CliConfig Load()
    {
        if (!File.Exists(path)) return new CliConfig();
        try
        {
            return JsonSerializer.Deserialize<CliConfig>(File.ReadAllText(path), Json) ?? new CliConfig();
        }
        catch (JsonException ex)
        {
            throw new CliException($"The config file {path} is not valid JSON (line {ex.LineNumber + 1}); fix it or delete it and run `eci config set` again.", ExitCodes.Usage);
        }
    }

    public void Save(CliConfig config)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(directory);
            else Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var temp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            JsonSerializer.Serialize(stream, config, Json);
        }
        // UnixCreateMode only applies to a new file; a leftover temp file keeps its old mode, so set it again.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temp, path, overwrite: true);
    }

    /// <param name="secretsServerOption">--secrets-server of the command being run.</param>
    /// <param name="cacheServerOption">--cache-server of the command being run.</param>
    public ResolvedConfig Resolve(Func<string, string?> env, string? serverOption, string? secretsServerOption = null, string? cacheServerOption = null)
    {
        var file = Load();
        var (server, serverSource) =
            !string.IsNullOrWhiteSpace(serverOption) ? (serverOption, ValueSource.CommandLine)
            : env(ServerVariable) is { Length: > 0 } s ? (s, ValueSource.Environment)
            : !string.IsNullOrWhiteSpace(file.Server) ? (file.Server, ValueSource.ConfigFile)
            : (null, ValueSource.None);
        var (key, keySource) =
            env(ApiKeyVariable) is { Length: > 0 } k ? (k.Trim(), ValueSource.Environment)
            : !string.IsNullOrWhiteSpace(file.ApiKey) ? (file.ApiKey, ValueSource.ConfigFile)
            : (null, ValueSource.None);
        return new ResolvedConfig(server, serverSource, key, keySource, path)
        {
            Secrets = ResolveService(env, secretsServerOption, SecretsServerVariable, file.SecretsServer, SecretsTokenVariable, file.SecretsToken, server),
            Cache = ResolveService(env, cacheServerOption, CacheServerVariable, file.CacheServer, CacheTokenVariable, file.CacheToken, server),
        };
    }

    /// <summary>Command line, then environment, then config file; the URL falls back to the server's
    /// (the all-in-one server serves every API on one address; the AppHost topology gives each its own).</summary>
    private static ResolvedService ResolveService(
        Func<string, string?> env, string? option, string serverVariable, string? fileServer, string tokenVariable, string? fileToken, string? server)
    {
        var (url, urlSource) =
            !string.IsNullOrWhiteSpace(option) ? (option, ValueSource.CommandLine)
            : env(serverVariable) is { Length: > 0 } s ? (s, ValueSource.Environment)
            : !string.IsNullOrWhiteSpace(fileServer) ? (fileServer, ValueSource.ConfigFile)
            : server is not null ? (server, ValueSource.ServerDefault)
            : (null, ValueSource.None);
        var (token, tokenSource) =
            env(tokenVariable) is { Length: > 0 } t ? (t.Trim(), ValueSource.Environment)
            : !string.IsNullOrWhiteSpace(fileToken) ? (fileToken, ValueSource.ConfigFile)
            : (null, ValueSource.None);
        return new ResolvedService(url, urlSource, token, tokenSource);
    }

    /// <summary>"eci_abcd1234...(40 characters)": enough to tell keys apart, never enough to use one.</summary>
    public static string Mask(string? key)
    {
        if (string.IsNullOrEmpty(key)) return "(not set)";
        // API keys show their public prefix (what `eci keys list` shows); the broker's "ecis_" admin token has no such prefix, so only its marker.
        var visible = key.StartsWith("eci_", StringComparison.Ordinal) && key.Length > 16 ? 12
            : key.StartsWith("ecis_", StringComparison.Ordinal) && key.Length > 20 ? 5
            : Math.Min(4, key.Length / 4);
        return $"{key[..visible]}...({key.Length} characters)";
    }

    /// <summary>An absolute http(s) URL, or a message saying what is wrong.</summary>
    public static Uri ParseServer(string server)
    {
        if (!Uri.TryCreate(server.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException($"'{server}' is not a server URL; use the server's address, e.g. http://127.0.0.1:5180.", ExitCodes.Usage);
        }
        // A base address without a trailing slash would drop its last path segment when combined with "api/v1/...".
        return uri.AbsolutePath.EndsWith('/') ? uri : new Uri(uri + "/");
    }
}
