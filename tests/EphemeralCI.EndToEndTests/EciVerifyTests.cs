using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// `eci jobs verify ID` as a user runs it against the all-in-one server: it fetches the job, its
/// attestation and the broker's public keys over HTTP and checks them (the offline form, --file and
/// --jwks, is tested beside the broker).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class EciVerifyTests(ServerFixture server)
{
    private static string EciDll =>
        typeof(EciVerifyTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EciDll").Value!;

    [Fact]
    public async Task Eci_verifies_a_finished_jobs_attestation_online_and_refuses_it_for_another_commit()
    {
        var id = await server.Intake.SubmitAsync(JobClient.Job("verified online", null, ("hello", "echo verify me")));
        await server.WaitForVerifiedRunnerEndAsync(id);

        var (code, stdout, stderr) = await EciAsync("jobs", "verify", id.ToString());
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains(id.ToString(), stdout);
        Assert.Contains("acme/widgets", stdout);
        Assert.Contains("verified gone", stdout);

        var (jsonCode, json, jsonErr) = await EciAsync("jobs", "verify", id.ToString(), "--json");
        Assert.True(jsonCode == 0, $"exit {jsonCode}\n{json}\n{jsonErr}");
        using var result = JsonDocument.Parse(json);
        Assert.True(result.RootElement.GetProperty("valid").GetBoolean());
        Assert.Equal(id.ToString(), result.RootElement.GetProperty("jobId").GetString());

        // The caller's expectation is checked too: the same attestation is not valid for another commit.
        var (otherCode, otherOut, _) = await EciAsync("jobs", "verify", id.ToString(), "--commit", new string('f', 40));
        Assert.Equal(6, otherCode);
        Assert.Contains("commit", otherOut, StringComparison.OrdinalIgnoreCase);
    }

    private async Task<(int Code, string StdOut, string StdErr)> EciAsync(params string[] args)
    {
        var home = Directory.CreateTempSubdirectory("eci-verify-home-").FullName;
        try
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            start.ArgumentList.Add(EciDll);
            foreach (var arg in args) start.ArgumentList.Add(arg);
            start.Environment["ECI_SERVER"] = server.BaseAddress.ToString();
            start.Environment["ECI_API_KEY"] = ServerFixture.AdminKey;
            start.Environment["ECI_CONFIG"] = Path.Combine(home, "config.json"); // nobody's own configuration
            start.Environment["NO_COLOR"] = "1";
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
