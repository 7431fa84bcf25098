namespace EphemeralCI.Intake.Auth;

/// <summary>What an API key may do. <see cref="Admin"/> implies every other scope.</summary>
public static class ApiKeyScopes
{
    public const string Submit = "submit";
    public const string Read = "read";
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [Submit, Read, Admin];

    public static bool IsKnown(string scope) => All.Contains(scope, StringComparer.Ordinal);

    /// <summary>True when a key holding <paramref name="granted"/> may use an endpoint needing <paramref name="required"/>.</summary>
    public static bool Allows(IEnumerable<string> granted, string required) =>
        granted.Any(s => s == required || s == Admin);
}
