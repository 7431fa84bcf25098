using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Formats.Tar;
using System.Net;
using System.Net.Sockets;
using EphemeralCI.DeployTests.Rendering;
using Xunit;

namespace EphemeralCI.DeployTests.Images;

/// <summary>
/// The images eng/images.sh builds, inspected in their OCI archives (user, entrypoint, labels,
/// layers, size, what is not in them), and the server image's root file system started in a
/// bubblewrap sandbox to prove its entrypoint runs and answers /health.
/// </summary>
public sealed class ImageTests
{
    public static TheoryData<string> Images => [.. ImageBuild.BuiltOrToBuild()];

    // The issue's budget for the four service images; the all-in-one server carries all four modules
    // plus a Debian root whose /usr its local jobs run on (git, perl), so it gets more.
    private const long ServiceImageBudget = 150L * 1024 * 1024;
    private const long ServerImageBudget = 200L * 1024 * 1024;

    [Theory]
    [MemberData(nameof(Images))]
    public void Each_image_has_one_version_tag_a_non_root_user_and_its_labels(string image)
    {
        var archive = ImageBuild.Open(image);
        Assert.Equal([ImageRecipe.Version], archive.Tags);
        var uid = image.StartsWith("runner-", StringComparison.Ordinal) ? 1000 : 1654;
        Assert.Equal($"{uid}:{uid}", archive.User); // numeric: the kubelet's runAsNonRoot can check it
        foreach (var labels in new[] { archive.Labels, archive.Annotations })
        {
            Assert.Equal($"ephemeralci/{image}", labels["org.opencontainers.image.title"]);
            Assert.Equal(ImageRecipe.Version, labels["org.opencontainers.image.version"]);
            Assert.Matches("^([0-9a-f]{40}|unknown)$", labels["org.opencontainers.image.revision"]);
            Assert.True(DateTimeOffset.TryParse(labels["org.opencontainers.image.created"], out _));
        }
        // The user exists in the image, and owns nothing but what it must write.
        var files = archive.Files();
        Assert.True(files.ContainsKey("/etc/passwd"));
        Assert.DoesNotContain(files, f => f.Value.Uid == uid && !f.Key.StartsWith("/home/", StringComparison.Ordinal)
            && f.Key is not ("/workspace" or "/var/lib/ephemeralci"));
        // Two layers: the Debian root, then ours.
        Assert.Equal(2, archive.Layers.Count);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Service_and_server_images_start_their_own_executable_and_carry_no_sdk_within_budget(string image)
    {
        if (image.StartsWith("runner-", StringComparison.Ordinal))
        {
            RunnerImage(image);
            return;
        }
        var archive = ImageBuild.Open(image);
        var files = archive.Files();
        var entry = Assert.Single(archive.Entrypoint);
        Assert.StartsWith("/app/EphemeralCI.", entry, StringComparison.Ordinal);
        Assert.Equal(TarEntryType.RegularFile, files[entry].Type);
        Assert.True(files[entry].Mode.HasFlag(UnixFileMode.OtherExecute), $"{entry} is not executable");
        Assert.Equal(0, files[entry].Uid); // the app cannot rewrite its own code
        // Self-contained: its own runtime, no SDK, no muxer, no compiler.
        Assert.Contains(files.Keys, f => f == "/app/libcoreclr.so");
        Assert.DoesNotContain(files.Keys, f => f.Contains("/sdk/", StringComparison.Ordinal) || f.EndsWith("/csc.dll", StringComparison.Ordinal)
            || f.EndsWith("/Microsoft.Build.dll", StringComparison.Ordinal) || f.EndsWith("/dotnet", StringComparison.Ordinal));
        Assert.DoesNotContain(files.Keys, f => f.EndsWith(".pdb", StringComparison.Ordinal));
        if (ImageRecipe.Services.Contains(image))
        {
            // No shell and no package manager where none is needed.
            foreach (var tool in new[] { "sh", "bash", "dash", "apt", "apt-get", "dpkg" })
            {
                Assert.DoesNotContain(files.Keys, f => f == $"/bin/{tool}" || f == $"/usr/bin/{tool}");
            }
            Assert.Equal("8080", archive.Env["ASPNETCORE_HTTP_PORTS"]);
        }
        var budget = image == "server" ? ServerImageBudget : ServiceImageBudget;
        Assert.True(archive.CompressedSize <= budget, $"{image}: {archive.CompressedSize / 1048576.0:F1} MB compressed, budget {budget / 1048576} MB");
        Assert.True(files.ContainsKey("/etc/ssl/certs/ca-certificates.crt"), "no CA bundle: TLS to Postgres/S3 would fail");
    }

    private static void RunnerImage(string image)
    {
        var archive = ImageBuild.Open(image);
        var files = archive.Files();
        Assert.Equal(ImageRecipe.NativeAgentPath, Assert.Single(archive.Cmd));
        Assert.Equal(TarEntryType.RegularFile, files[ImageRecipe.NativeAgentPath].Type);
        Assert.True(files[ImageRecipe.NativeAgentPath].Mode.HasFlag(UnixFileMode.OtherExecute));
        // The Kubernetes backend starts the agent with `sh -c`; jobs expect git.
        Assert.True(files.ContainsKey("/usr/bin/git") && (files.ContainsKey("/bin/sh") || files.ContainsKey("/usr/bin/sh")), $"{image}: no sh or git");
        if (image == "runner-dotnet") Assert.Contains(files.Keys, f => f.StartsWith("/usr/share/dotnet/sdk/", StringComparison.Ordinal));
        if (image == "runner-node") Assert.True(files.ContainsKey("/usr/bin/node") || files.ContainsKey("/usr/bin/nodejs"));
    }

    [Fact]
    public async Task The_server_image_starts_in_a_bubblewrap_sandbox_and_answers_health()
    {
        var archive = ImageBuild.Open("server");
        var root = Directory.CreateTempSubdirectory("eci-server-image-");
        var data = Directory.CreateTempSubdirectory("eci-server-data-");
        Process? server = null;
        try
        {
            archive.Unpack(root.FullName);
            var port = FreePort.Next();
            var uid = archive.User!.Split(':')[0];
            // The image's volume, fresh and owned by its user, as a container runtime would give it.
            Chown(data.FullName, archive.User!);
            var bwrap = new List<string>
            {
                "--bind", root.FullName, "/", "--bind", data.FullName, "/var/lib/ephemeralci",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", "/sys", "/sys",
                "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf",
                "--unshare-pid", "--die-with-parent", "--clearenv", "--chdir", archive.Config["config"]!["WorkingDir"]!.ToString(),
            };
            foreach (var (name, value) in archive.Env) bwrap.AddRange(["--setenv", name, value]);
            bwrap.AddRange(["--setenv", "ASPNETCORE_URLS", $"http://127.0.0.1:{port}", "--"]);
            bwrap.AddRange(archive.Entrypoint);
            // As root, drop to the image's user first, so the sandbox runs as that user as in a pod.
            var start = Environment.UserName == "root"
                ? new ProcessStartInfo("setpriv", ["--reuid", uid, "--regid", archive.User!.Split(':')[1], "--clear-groups", "--", "bwrap", .. bwrap])
                : new ProcessStartInfo("bwrap", bwrap);
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            server = Process.Start(start)!;
            var output = new System.Text.StringBuilder();
            server.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
            server.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
            server.BeginOutputReadLine();
            server.BeginErrorReadLine();

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow.AddMinutes(3);
            HttpStatusCode? status = null;
            string body = "";
            while (DateTime.UtcNow < deadline && !server.HasExited)
            {
                try
                {
                    using var response = await http.GetAsync($"http://127.0.0.1:{port}/health");
                    status = response.StatusCode;
                    body = await response.Content.ReadAsStringAsync();
                    if (status == HttpStatusCode.OK) break;
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
                await Task.Delay(500);
            }
            Assert.True(status == HttpStatusCode.OK, $"/health answered {status?.ToString() ?? "nothing"} {body}; exited: {server.HasExited}; output:\n{output}");
            Assert.Equal("Healthy", body);
            // It made its databases and keys in the volume, as the image's user.
            Assert.True(File.Exists(Path.Combine(data.FullName, "intakedb.db")), $"no intakedb.db in the data volume: {string.Join(", ", Directory.EnumerateFileSystemEntries(data.FullName))}");
        }
        finally
        {
            if (server is { HasExited: false }) server.Kill(entireProcessTree: true);
            server?.WaitForExit();
            server?.Dispose();
            root.Delete(recursive: true);
            data.Delete(recursive: true);
        }
    }

    [Fact]
    public void The_manifests_run_the_images_as_their_user_and_point_the_provisioner_at_the_native_agent()
    {
        // runAsUser in every kustomization and the chart is the images' app user; the agent path is where eng/images.sh puts it.
        var script = File.ReadAllText(ImageRecipe.Script);
        Assert.Contains("APP_UID=1654", script, StringComparison.Ordinal);
        Assert.Contains($"\"$files{ImageRecipe.NativeAgentPath}\"", script, StringComparison.Ordinal);
        foreach (var target in Manifests.Targets)
        {
            var m = Manifests.Render(target);
            Assert.All(m.Deployments, d => Assert.Equal(1654, d.Spec.Template.Spec.SecurityContext.RunAsUser));
            var env = m.Deployment("provisioner").Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
            Assert.Equal(ImageRecipe.NativeAgentPath, env["Provisioner__Kubernetes__AgentAssemblyPath"]);
        }
    }

    [Fact]
    public void The_tests_know_every_image_the_script_builds()
    {
        // ECI_TEST_IMAGES=all must mean what `eng/images.sh` with no argument builds.
        var script = File.ReadAllText(ImageRecipe.Script);
        var services = System.Text.RegularExpressions.Regex.Match(script, @"\nSERVICES=\(([^)]*)\)").Groups[1].Value.Split(' ');
        var all = System.Text.RegularExpressions.Regex.Match(script, @"\nALL=\(([^)]*)\)").Groups[1].Value
            .Replace("\"${SERVICES[@]}\"", string.Join(' ', services), StringComparison.Ordinal).Split(' ');
        Assert.Equal(ImageRecipe.Services, services);
        Assert.Equal(ImageRecipe.All, all);
    }

    private static void Chown(string path, string owner)
    {
        if (Environment.UserName != "root") return;
        using var chown = Process.Start("chown", [owner, path])!;
        chown.WaitForExit();
        Assert.Equal(0, chown.ExitCode);
    }

}
