using System.Data.Common;
using System.Text.RegularExpressions;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Where the cache's S3 bucket is, parsed from a connection string
/// <c>Endpoint=http://host:port;AccessKey=...;SecretKey=...[;Bucket=...][;Region=...]</c>
/// (keys case-insensitive). <see cref="ToString"/> never shows the secret key.
/// </summary>
public sealed partial class S3Settings
{
    public const string DefaultBucket = "ephemeralci-cache";
    public const string DefaultRegion = "us-east-1";

    private static readonly string[] KnownKeys = ["Endpoint", "AccessKey", "SecretKey", "Bucket", "Region"];

    public required Uri Endpoint { get; init; }
    public required string AccessKey { get; init; }
    public required string SecretKey { get; init; }
    public string Bucket { get; init; } = DefaultBucket;
    public string Region { get; init; } = DefaultRegion;
    public bool UseSsl => Endpoint.Scheme == Uri.UriSchemeHttps;

    /// <summary>Parses and checks <paramref name="connectionString"/>; errors name <paramref name="settingName"/> and the key, never a value.</summary>
    public static S3Settings Parse(string? connectionString, string settingName = "ConnectionStrings:minio")
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{settingName}' is missing: set it to 'Endpoint=http://host:port;AccessKey=...;SecretKey=...'.");
        }

        var parts = new DbConnectionStringBuilder();
        try
        {
            parts.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            // The parser's own message may quote the input, which holds the secret key.
            throw new InvalidOperationException($"Configuration setting '{settingName}' is not a 'Key=value;Key=value' connection string.");
        }

        foreach (string key in parts.Keys)
        {
            if (!KnownKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException(
                    $"Configuration setting '{settingName}' has an unknown key '{key}'; known keys: {string.Join(", ", KnownKeys)}.");
            }
        }

        string? Get(string key) => parts.TryGetValue(key, out var v) && v is string s && !string.IsNullOrWhiteSpace(s) ? s.Trim() : null;
        string Require(string key) => Get(key) ?? throw new InvalidOperationException($"Configuration setting '{settingName}' lacks '{key}='.");

        var endpointText = Require("Endpoint");
        if (!Uri.TryCreate(endpointText, UriKind.Absolute, out var endpoint)
            || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps)
            || endpoint.AbsolutePath != "/" || !string.IsNullOrEmpty(endpoint.Query) || !string.IsNullOrEmpty(endpoint.UserInfo))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{settingName}' has an invalid 'Endpoint': use http://host:port or https://host:port, without a path or credentials.");
        }

        var bucket = Get("Bucket") ?? DefaultBucket;
        if (!IsValidBucketName(bucket))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{settingName}' has an invalid 'Bucket' '{bucket}': S3 bucket names are 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit.");
        }

        return new S3Settings
        {
            Endpoint = endpoint,
            AccessKey = Require("AccessKey"),
            SecretKey = Require("SecretKey"),
            Bucket = bucket,
            Region = Get("Region") ?? DefaultRegion,
        };
    }

    /// <summary>S3's bucket naming rules (the subset every S3 implementation accepts).</summary>
    public static bool IsValidBucketName(string name) =>
        BucketName().IsMatch(name) && !name.Contains("..", StringComparison.Ordinal) && !IpAddressShape().IsMatch(name);

    public override string ToString() => $"Endpoint={Endpoint};AccessKey={AccessKey};SecretKey=***;Bucket={Bucket};Region={Region}";

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    [GeneratedRegex(@"^\d+\.\d+\.\d+\.\d+$")]
    private static partial Regex IpAddressShape();
}
