using System.Diagnostics;
using System.Net;
using System.Runtime.Versioning;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Network;

/// <summary>
/// The network of an <c>egress</c> job: a network namespace of its own (created here, joined by the
/// sandbox through nsenter, so bubblewrap shares it instead of making an empty one), a veth pair with
/// a /30 from the pool, masquerade to the outside, and an nftables table that drops everything the
/// job sends to the host itself or to private, link-local (cloud metadata) and shared ranges.
/// </summary>
/// <remarks>
/// Why kernel networking and not userspace (pasta, slirp4netns): the filter then lives in the host's
/// namespace, where nothing in the sandbox can reach it, it costs no copy of every packet through a
/// helper process, and removal is three idempotent commands whose results the host can check
/// (<c>ip netns</c>, <c>ip link</c>, <c>nft list tables</c>). It needs root, which the local sandbox
/// needs anyway for cgroups.
/// </remarks>
[UnsupportedOSPlatform("windows")]
public sealed class EgressNetwork(string instance, EgressAddressPool pool, IReadOnlyList<IPAddress> dnsServers, ILogger logger)
{
    public const string NetnsDirectory = "/run/netns";
    public const string IpPath = "/usr/sbin/ip";
    public const string NftPath = "/usr/sbin/nft";
    public const string NsenterPath = "/usr/bin/nsenter";

    /// <summary>Null when this machine can give jobs egress, else what is missing.</summary>
    public static string? MissingPrerequisite()
    {
        foreach (var (tool, package) in new[] { (IpPath, "iproute2"), (NftPath, "nftables"), (NsenterPath, "util-linux") })
        {
            if (!File.Exists(tool)) return $"network 'egress' needs {tool}: apt-get install {package}";
        }
        return null;
    }

    public JobNetworkNames Names(Guid jobId) => JobNetworkNames.For(instance, jobId);

    /// <summary>The namespace file the sandbox joins.</summary>
    public static string NamespacePath(JobNetworkNames names) => Path.Combine(NetnsDirectory, names.Namespace);

    /// <summary>Creates the job's namespace, veth pair, addresses, route and rules. On failure removes what it made and throws <see cref="RunnerStartException"/>.</summary>
    public async Task<JobNetworkNames> CreateAsync(Guid jobId, CancellationToken ct)
    {
        if (MissingPrerequisite() is { } missing) throw new RunnerStartException(missing);
        var names = Names(jobId);
        await RemoveAsync(jobId, CancellationToken.None); // whatever a crashed earlier attempt left is not this job's
        var lease = pool.Rent(jobId);
        try
        {
            EnsureForwarding();
            await RunAsync(IpPath, ["-batch", "-"],
                $"netns add {names.Namespace}\n" +
                $"link add {names.HostInterface} type veth peer name {JobNetworkNames.JobInterface} netns {names.Namespace}\n" +
                $"addr add {lease.HostAddress}/{EgressLease.PrefixLength} dev {names.HostInterface}\n" +
                $"link set {names.HostInterface} up\n", ct);
            await RunAsync(IpPath, ["-n", names.Namespace, "-batch", "-"],
                "link set lo up\n" +
                $"addr add {lease.JobAddress}/{EgressLease.PrefixLength} dev {JobNetworkNames.JobInterface}\n" +
                $"link set {JobNetworkNames.JobInterface} up\n" +
                $"route add default via {lease.HostAddress}\n", ct);
            await RunAsync(NftPath, ["-f", "-"], EgressRules.Ruleset(names, lease, pool.Cidr, dnsServers), ct);
            return names;
        }
        catch (Exception ex)
        {
            await RemoveAsync(jobId, CancellationToken.None);
            throw ex as RunnerStartException ?? new RunnerStartException($"could not set up the job's egress network: {ex.Message}", ex);
        }
    }

    /// <summary>Removes the job's rules, veth pair and namespace, and frees its addresses. Idempotent.</summary>
    public async Task RemoveAsync(Guid jobId, CancellationToken ct)
    {
        var names = Names(jobId);
        // Rules first: never a moment with the namespace gone but its addresses still allowed out.
        await RunQuietlyAsync(NftPath, ["delete", "table", "inet", names.Table], ct);
        // Deleting one end deletes both, even while a process still holds the namespace.
        await RunQuietlyAsync(IpPath, ["link", "delete", names.HostInterface], ct);
        if (File.Exists(NamespacePath(names))) await RunQuietlyAsync(IpPath, ["netns", "delete", names.Namespace], ct);
        pool.Return(jobId);
    }

    /// <summary>The jobs of this instance that still have a namespace or a table on this machine.</summary>
    public async Task<IReadOnlySet<Guid>> ExistingAsync(CancellationToken ct)
    {
        var jobs = new HashSet<Guid>();
        var nsPrefix = JobNetworkNames.NamespacePrefix(instance);
        if (Directory.Exists(NetnsDirectory))
        {
            foreach (var file in Directory.EnumerateFileSystemEntries(NetnsDirectory))
            {
                if (JobNetworkNames.JobOf(Path.GetFileName(file), nsPrefix) is { } id) jobs.Add(id);
            }
        }
        if (File.Exists(NftPath))
        {
            var tablePrefix = JobNetworkNames.TablePrefix(instance);
            if (await NftTables.ListAsync(ct) is { } tables)
            {
                foreach (var name in NftTables.Names(tables, "inet"))
                {
                    if (JobNetworkNames.JobOf(name, tablePrefix) is { } id) jobs.Add(id);
                }
            }
        }
        return jobs;
    }

    /// <summary>
    /// Answers to the job's connections are forwarded from the uplink to its veth, which needs IPv4
    /// forwarding host-wide (per-interface forwarding applies to the receiving interface). Our
    /// forward chain only lets answers in, so turning it on opens nothing towards the jobs.
    /// </summary>
    private void EnsureForwarding()
    {
        const string path = "/proc/sys/net/ipv4/ip_forward";
        if (File.ReadAllText(path).Trim() == "1") return;
        logger.LogWarning("Enabling IPv4 forwarding (net.ipv4.ip_forward=1) for jobs with network 'egress'");
        File.WriteAllText(path, "1");
    }

    private async Task RunQuietlyAsync(string file, IReadOnlyList<string> args, CancellationToken ct)
    {
        if (!File.Exists(file)) return;
        await ExecAsync(file, args, null, ct);
    }

    private static async Task RunAsync(string file, IReadOnlyList<string> args, string stdin, CancellationToken ct)
    {
        var (code, _, error) = await ExecAsync(file, args, stdin, ct);
        if (code != 0) throw new RunnerStartException($"{Path.GetFileName(file)} {string.Join(' ', args)} failed ({code}): {error.Trim()}");
    }

    internal static async Task<(int Code, string Output, string Error)> ExecAsync(string file, IReadOnlyList<string> args, string? stdin, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi) ?? throw new RunnerStartException($"{file} did not start");
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin.AsMemory(), ct);
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync(ct);
        var error = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return (process.ExitCode, await output, await error);
    }

    /// <summary>The host's resolvers from /etc/resolv.conf (the file the sandbox sees), loopback ones excluded: the job's loopback is its own.</summary>
    public static IReadOnlyList<IPAddress> HostResolvers(string resolvConf = "/etc/resolv.conf")
    {
        if (!File.Exists(resolvConf)) return [];
        return File.ReadLines(resolvConf)
            .Select(l => l.Trim().Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
            .Where(p => p is ["nameserver", _, ..])
            .Select(p => IPAddress.TryParse(p[1], out var a) ? a : null)
            .OfType<IPAddress>()
            .Where(a => !IPAddress.IsLoopback(a))
            .ToList();
    }
}
