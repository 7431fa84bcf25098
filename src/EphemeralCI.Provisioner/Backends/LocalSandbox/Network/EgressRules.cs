using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Network;

/// <summary>The host-side names of one egress job's network: all derived from the provisioner instance and the job, so leftovers are found by name after a crash.</summary>
public sealed record JobNetworkNames(string Namespace, string HostInterface, string Table)
{
    /// <summary>The job's end of the veth pair, inside its own namespace (no clash with the host's eth0).</summary>
    public const string JobInterface = "eth0";

    /// <param name="instance">The provisioner's <c>CgroupName</c>: two provisioners on one machine never touch each other's networks.</param>
    public static JobNetworkNames For(string instance, Guid jobId)
    {
        // Interface names have 15 bytes at most: a hash of instance and job, not the job id itself.
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{instance}/{jobId}")))[..11];
        return new JobNetworkNames(NamespacePrefix(instance) + jobId.ToString("N"), $"eci{hash}h", TablePrefix(instance) + jobId.ToString("N"));
    }

    /// <summary>Network namespaces of this instance are <c>/run/netns/{prefix}{job id}</c>.</summary>
    public static string NamespacePrefix(string instance) => "eci-" + InstanceTag(instance) + "-";

    /// <summary>nftables tables of this instance are <c>inet {prefix}{job id}</c>.</summary>
    public static string TablePrefix(string instance) => "eci_" + InstanceTag(instance) + "_";

    /// <summary>The job id in a namespace or table name of this instance, or null when the name is not ours.</summary>
    public static Guid? JobOf(string name, string prefix) =>
        name.StartsWith(prefix, StringComparison.Ordinal) && Guid.TryParseExact(name[prefix.Length..], "N", out var id) ? id : null;

    // nft identifiers and namespace names accept any hex: a short hash keeps both safe whatever the instance name is.
    private static string InstanceTag(string instance) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(instance)))[..8];
}

/// <summary>
/// The nftables ruleset of one egress job: a table of its own (so teardown is one atomic
/// <c>delete table</c> and nothing of the job can stay behind in a shared chain), hooked at input,
/// forward and postrouting.
/// </summary>
public static class EgressRules
{
    /// <summary>Never reachable from a job: private, shared-address, link-local (cloud metadata at 169.254.169.254), loopback, multicast and reserved ranges.</summary>
    public static readonly IReadOnlyList<string> BlockedIPv4 =
    [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    ];

    public static string Ruleset(JobNetworkNames names, EgressLease lease, string pool, IReadOnlyList<IPAddress> dnsServers)
    {
        var vh = Quote(names.HostInterface);
        var dns = dnsServers.Where(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)).Select(a => a.ToString()).ToList();
        var sb = new StringBuilder();
        sb.Append($"table inet {names.Table} {{\n");
        // The host itself — every address it has, on any interface, loopback included — is not the
        // job's business: the control plane is reached through the relay sockets, never over IP.
        sb.Append($"  chain input {{ type filter hook input priority filter - 10; policy accept;\n");
        if (dns.Count > 0)
        {
            // A resolver on the host (not loopback: the job's 127.0.0.1 is its own) is the one exception.
            sb.Append($"    iifname {vh} ip daddr {{ {string.Join(", ", dns)} }} meta l4proto {{ tcp, udp }} th dport 53 accept\n");
        }
        sb.Append($"    iifname {vh} drop\n  }}\n");
        sb.Append($"  chain forward {{ type filter hook forward priority filter - 10; policy accept;\n");
        // Only answers to the job's own connections come in; nobody can open one to the job.
        sb.Append($"    oifname {vh} ct state established,related accept\n");
        sb.Append($"    oifname {vh} drop\n");
        // Spoofed sources would escape the masquerade below and the per-job accounting.
        sb.Append($"    iifname {vh} ip saddr != {lease.JobAddress} drop\n");
        if (dns.Count > 0)
        {
            sb.Append($"    iifname {vh} ip daddr {{ {string.Join(", ", dns)} }} meta l4proto {{ tcp, udp }} th dport 53 accept\n");
        }
        sb.Append($"    iifname {vh} ip daddr {{ {string.Join(", ", BlockedIPv4.Append(pool).Distinct())} }} drop\n");
        // The job gets IPv4 only; no IPv6 from it is forwarded at all (so fc00::/7 and fe80::/10 neither).
        sb.Append($"    iifname {vh} meta nfproto ipv6 drop\n");
        sb.Append($"  }}\n");
        sb.Append($"  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n");
        sb.Append($"    ip saddr {lease.JobAddress} oifname != {vh} masquerade\n");
        sb.Append($"  }}\n}}\n");
        return sb.ToString();
    }

    private static string Quote(string name) => "\"" + name + "\"";
}

/// <summary>A job's /30 of the pool: the host end (its gateway) and its own address.</summary>
public sealed record EgressLease(int Index, IPAddress HostAddress, IPAddress JobAddress)
{
    public const int PrefixLength = 30;
}

/// <summary>
/// Hands out /30 subnets of <c>Provisioner:LocalSandbox:EgressAddressPool</c>, one per running
/// egress job, and takes them back at teardown. In memory: after a restart every egress network of
/// this instance is a leftover and is removed before new jobs start.
/// </summary>
public sealed class EgressAddressPool
{
    private readonly uint _base;
    private readonly int _size;
    private readonly Dictionary<Guid, EgressLease> _leases = [];
    private readonly SortedSet<int> _free;
    private readonly int _start;
    private readonly Func<IReadOnlySet<IPAddress>> _hostAddresses;

    /// <param name="installation">Where in the pool this installation starts looking, so installations
    /// sharing the default pool on one host do not all begin at its first subnet.</param>
    /// <param name="hostAddresses">The host's addresses now; a subnet one of them is in belongs to someone else.</param>
    public EgressAddressPool(string cidr, Guid? installation = null, Func<IReadOnlySet<IPAddress>>? hostAddresses = null)
    {
        var (network, prefix) = Parse(cidr);
        _base = network;
        _size = 1 << (EgressLease.PrefixLength - prefix);
        Cidr = cidr;
        _free = new SortedSet<int>(Enumerable.Range(0, _size));
        _start = installation is { } id ? (int)(BitConverter.ToUInt32(id.ToByteArray(), 0) % (uint)_size) : 0;
        _hostAddresses = hostAddresses ?? HostAddresses;
    }

    private static IReadOnlySet<IPAddress> HostAddresses() =>
        System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses.Select(a => a.Address))
            .ToHashSet();

    public string Cidr { get; }

    /// <summary>Parses an IPv4 CIDR with a prefix of at most /30; throws <see cref="ArgumentException"/> naming what is wrong.</summary>
    public static (uint Network, int Prefix) Parse(string cidr)
    {
        var parts = cidr.Split('/');
        if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var address) || address.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(parts[1], out var prefix) || prefix is < 8 or > EgressLease.PrefixLength)
        {
            throw new ArgumentException($"egress address pool '{cidr}' must be an IPv4 CIDR between /8 and /30, e.g. 10.213.0.0/16");
        }
        var value = ToUInt(address);
        var mask = uint.MaxValue << (32 - prefix);
        if ((value & ~mask) != 0) throw new ArgumentException($"egress address pool '{cidr}' has host bits set: use {FromUInt(value & mask)}/{prefix}");
        return (value, prefix);
    }

    public EgressLease Rent(Guid jobId)
    {
        lock (_leases)
        {
            if (_leases.TryGetValue(jobId, out var existing)) return existing;
            var taken = _hostAddresses();
            // From this installation's starting point on, wrapping; a subnet the host already has an
            // address of is a neighbour's (another installation on the same pool): skip it.
            var index = _free.GetViewBetween(_start, _size - 1).Concat(_free.GetViewBetween(0, Math.Max(0, _start - 1)))
                .Where(i => !taken.Contains(FromUInt(_base + (uint)(i * 4) + 1)) && !taken.Contains(FromUInt(_base + (uint)(i * 4) + 2)))
                .Select(i => (int?)i).FirstOrDefault()
                ?? throw new RunnerStartException($"the egress address pool {Cidr} is exhausted ({_size} jobs with egress at once, or its addresses are taken on this host): choose a larger Provisioner:LocalSandbox:EgressAddressPool");
            _free.Remove(index);
            var subnet = _base + (uint)(index * 4);
            var lease = new EgressLease(index, FromUInt(subnet + 1), FromUInt(subnet + 2));
            _leases[jobId] = lease;
            return lease;
        }
    }

    public void Return(Guid jobId)
    {
        lock (_leases)
        {
            if (_leases.Remove(jobId, out var lease)) _free.Add(lease.Index);
        }
    }

    public int InUse
    {
        get { lock (_leases) return _leases.Count; }
    }

    private static uint ToUInt(IPAddress a)
    {
        var b = a.GetAddressBytes();
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }

    private static IPAddress FromUInt(uint v) => new([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);
}
