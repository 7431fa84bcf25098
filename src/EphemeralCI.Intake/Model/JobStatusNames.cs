using System.Text.Json;
using System.Text.Json.Serialization;
using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.Intake.Model;

/// <summary>The wire and storage spelling of <see cref="JobStatus"/>: snake_case ("timed_out").</summary>
public static class JobStatusNames
{
    public static string ToName(JobStatus status) => JsonNamingPolicy.SnakeCaseLower.ConvertName(status.ToString());

    public static JobStatus Parse(string name) =>
        TryParse(name, out var status) ? status : throw new FormatException($"unknown job status '{name}'");

    public static bool TryParse(string? name, out JobStatus status)
    {
        foreach (var candidate in Enum.GetValues<JobStatus>())
        {
            if (string.Equals(ToName(candidate), name, StringComparison.Ordinal))
            {
                status = candidate;
                return true;
            }
        }
        status = default;
        return false;
    }

    public static IEnumerable<string> All => Enum.GetValues<JobStatus>().Select(ToName);
}

/// <summary>
/// Serialises <see cref="JobStatus"/> as snake_case on the intake's own DTOs only, so composing
/// this module with others does not change their JSON.
/// </summary>
public sealed class SnakeCaseJobStatusConverter() : JsonStringEnumConverter<JobStatus>(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false);
