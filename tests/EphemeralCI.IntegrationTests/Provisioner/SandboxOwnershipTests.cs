using System.Runtime.Versioning;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;
using EphemeralCI.Provisioner.Ownership;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// One owner per sandbox: whatever path ends it — a start that fails halfway, a destroy after a restart
/// (nothing known but its id) — its cgroup, egress network, relay socket and folder go together.
/// Real cgroups, network namespaces and folders on this machine.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class SandboxOwnershipTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "eci-owner-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Installation _installation = new();
    private LocalSandboxBackend _backend = null!;

    private LocalSandboxBackend NewBackend(string? setpriv = null)
    {
        var options = new LocalSandboxOptions
        {
            WorkRoot = Path.Combine(_root, "runners"),
            CgroupName = "eci-owner-" + Guid.NewGuid().ToString("N")[..8],
            EgressAddressPool = $"10.215.{Random.Shared.Next(0, 64) * 4}.0/22",
        };
        if (setpriv is not null) options.SetprivPath = setpriv;
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [IntakeEndpoint.IntakeUrlKey] = "http://127.0.0.1:9" }).Build();
        return new LocalSandboxBackend(Options.Create(options), new IntakeEndpoint(config), _installation, NullLogger<LocalSandboxBackend>.Instance);
    }

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_root);
        _installation.Set(Guid.NewGuid());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _backend.DisposeAsync();
        Sandbox.DeleteTree(_root);
    }

    private string NetworkNamespace(Guid id) => EgressNetwork.NamespacePath(JobNetworkNames.For(_installation.Id.ToString("N"), id));

    [Fact]
    public async Task A_start_that_fails_after_its_cgroup_network_relay_and_folders_exist_leaves_none_of_them()
    {
        // setpriv that exists but cannot be executed: everything else is made first, then the spawn fails.
        var notExecutable = Path.Combine(_root, "setpriv");
        await File.WriteAllTextAsync(notExecutable, "not a program");
        File.SetUnixFileMode(notExecutable, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _backend = NewBackend(notExecutable);
        Assert.Null(_backend.MissingPrerequisite());
        var jobId = Guid.NewGuid();
        var egress = EgressNetwork.MissingPrerequisite() is null;

        var ex = await Assert.ThrowsAsync<RunnerStartException>(() => _backend.StartAsync(
            new RunnerLaunch(jobId, "runner-x", "t", new RunnerTemplateDefinition { Network = egress ? "egress" : "control-plane" }, "token", DateTimeOffset.UtcNow.AddMinutes(1)),
            CancellationToken.None));

        Assert.Matches("could not start the sandbox|did not start", ex.Message);
        Assert.False(_backend.JobCgroups.Exists(jobId), "cgroup left");
        Assert.False(Directory.Exists(_backend.JobDirectory(jobId)), "folder (workspace, control socket) left");
        if (egress) Assert.False(File.Exists(NetworkNamespace(jobId)), "network namespace left");
    }

    [Fact]
    public async Task A_sandbox_known_only_by_its_id_is_removed_whole()
    {
        _backend = NewBackend();
        Assert.Null(_backend.MissingPrerequisite());
        // What a provisioner that died leaves: a cgroup and a folder with a workspace, no process object.
        var id = Guid.NewGuid();
        _backend.JobCgroups.Create(id, new RunnerResources());
        Directory.CreateDirectory(Path.Combine(_backend.JobDirectory(id), "workspace"));
        await File.WriteAllTextAsync(Path.Combine(_backend.JobDirectory(id), "workspace", "artifact"), "x");

        await _backend.DestroyAsync(new RunnerRef(id, "runner-" + id.ToString("N"), null), CancellationToken.None);

        Assert.False(_backend.JobCgroups.Exists(id));
        Assert.False(Directory.Exists(_backend.JobDirectory(id)));
    }
}
