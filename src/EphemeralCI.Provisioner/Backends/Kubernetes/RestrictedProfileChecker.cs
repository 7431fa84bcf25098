using k8s.Models;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// Checks a pod spec against the "restricted" Pod Security Standard (which includes "baseline"),
/// as the namespace label <c>pod-security.kubernetes.io/enforce: restricted</c> would. The backend
/// runs it before creating a Job, so a template can never produce a pod the cluster would (or
/// should) refuse; the unit tests run it on every rendered spec.
/// See https://kubernetes.io/docs/concepts/security/pod-security-standards/.
/// </summary>
public static class RestrictedProfileChecker
{
    private static readonly HashSet<string> AllowedVolumeTypes =
        ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

    private static readonly HashSet<string> SafeSysctls =
    [
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];

    private static readonly HashSet<string> AllowedSeLinuxTypes = ["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

    /// <summary>Every rule the spec breaks, each naming the field; empty when it is compliant.</summary>
    public static IReadOnlyList<string> Check(V1PodSpec pod)
    {
        var violations = new List<string>();
        var podSc = pod.SecurityContext;

        // baseline: host namespaces
        if (pod.HostNetwork == true) violations.Add("spec.hostNetwork must not be true");
        if (pod.HostPID == true) violations.Add("spec.hostPID must not be true");
        if (pod.HostIPC == true) violations.Add("spec.hostIPC must not be true");
        if (podSc?.WindowsOptions?.HostProcess == true) violations.Add("spec.securityContext.windowsOptions.hostProcess must not be true");

        // baseline: sysctls, SELinux, AppArmor; restricted: seccomp, non-root
        foreach (var sysctl in podSc?.Sysctls ?? [])
        {
            if (!SafeSysctls.Contains(sysctl.Name)) violations.Add($"spec.securityContext.sysctls: '{sysctl.Name}' is not a safe sysctl");
        }
        CheckSeLinux(podSc?.SeLinuxOptions, "spec.securityContext.seLinuxOptions", violations);
        CheckAppArmor(podSc?.AppArmorProfile?.Type, "spec.securityContext.appArmorProfile.type", violations);
        var podSeccomp = podSc?.SeccompProfile?.Type;
        if (podSeccomp is not null && !IsAllowedSeccomp(podSeccomp))
        {
            violations.Add($"spec.securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not '{podSeccomp}'");
        }
        if (podSc?.RunAsUser == 0) violations.Add("spec.securityContext.runAsUser must not be 0");

        // restricted: volume types (which also rules out baseline's hostPath)
        foreach (var volume in pod.Volumes ?? [])
        {
            var type = VolumeType(volume);
            if (type is null || !AllowedVolumeTypes.Contains(type))
            {
                violations.Add($"spec.volumes[{volume.Name}]: volume type '{type ?? "unknown"}' is not allowed (allowed: {string.Join(", ", AllowedVolumeTypes)})");
            }
        }

        var containers = (pod.Containers ?? []).Select(c => new Container($"spec.containers[{c.Name}]", c.SecurityContext, c.Ports))
            .Concat((pod.InitContainers ?? []).Select(c => new Container($"spec.initContainers[{c.Name}]", c.SecurityContext, c.Ports)))
            .Concat((pod.EphemeralContainers ?? []).Select(c => new Container($"spec.ephemeralContainers[{c.Name}]", c.SecurityContext, c.Ports)))
            .ToList();
        if (containers.Count == 0) violations.Add("spec.containers must not be empty");

        foreach (var (path, sc, ports) in containers)
        {
            foreach (var port in ports ?? [])
            {
                if (port.HostPort is { } hostPort && hostPort != 0) violations.Add($"{path}.ports: hostPort {hostPort} is not allowed");
            }
            if (sc?.Privileged == true) violations.Add($"{path}.securityContext.privileged must not be true");
            if (sc?.WindowsOptions?.HostProcess == true) violations.Add($"{path}.securityContext.windowsOptions.hostProcess must not be true");
            if (sc?.ProcMount is { } procMount && procMount != "Default") violations.Add($"{path}.securityContext.procMount must be Default, not '{procMount}'");
            CheckSeLinux(sc?.SeLinuxOptions, $"{path}.securityContext.seLinuxOptions", violations);
            CheckAppArmor(sc?.AppArmorProfile?.Type, $"{path}.securityContext.appArmorProfile.type", violations);

            if (sc?.AllowPrivilegeEscalation != false) violations.Add($"{path}.securityContext.allowPrivilegeEscalation must be false");

            if (sc?.RunAsNonRoot == false || (sc?.RunAsNonRoot is null && podSc?.RunAsNonRoot != true))
            {
                violations.Add($"{path}.securityContext.runAsNonRoot must be true (here or in spec.securityContext)");
            }
            if (sc?.RunAsUser == 0) violations.Add($"{path}.securityContext.runAsUser must not be 0");

            var seccomp = sc?.SeccompProfile?.Type;
            if (seccomp is not null ? !IsAllowedSeccomp(seccomp) : podSeccomp is null)
            {
                violations.Add($"{path}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost (here or in spec.securityContext), not '{seccomp ?? "unset"}'");
            }

            var caps = sc?.Capabilities;
            if (caps?.Drop?.Contains("ALL") != true) violations.Add($"{path}.securityContext.capabilities.drop must contain ALL");
            foreach (var added in caps?.Add ?? [])
            {
                if (added != "NET_BIND_SERVICE") violations.Add($"{path}.securityContext.capabilities.add: '{added}' is not allowed (only NET_BIND_SERVICE)");
            }
        }
        return violations;
    }

    private static bool IsAllowedSeccomp(string type) => type is "RuntimeDefault" or "Localhost";

    private static void CheckSeLinux(V1SELinuxOptions? options, string path, List<string> violations)
    {
        if (options is null) return;
        if (!string.IsNullOrEmpty(options.Type) && !AllowedSeLinuxTypes.Contains(options.Type)) violations.Add($"{path}.type '{options.Type}' is not allowed");
        if (!string.IsNullOrEmpty(options.User)) violations.Add($"{path}.user must not be set");
        if (!string.IsNullOrEmpty(options.Role)) violations.Add($"{path}.role must not be set");
    }

    private static void CheckAppArmor(string? type, string path, List<string> violations)
    {
        if (type is not null && type is not ("RuntimeDefault" or "Localhost")) violations.Add($"{path} must be RuntimeDefault or Localhost, not '{type}'");
    }

    /// <summary>The volume source set on a volume, by its field name (null if none is).</summary>
    public static string? VolumeType(V1Volume v) => v switch
    {
        { ConfigMap: not null } => "configMap",
        { Csi: not null } => "csi",
        { DownwardAPI: not null } => "downwardAPI",
        { EmptyDir: not null } => "emptyDir",
        { Ephemeral: not null } => "ephemeral",
        { PersistentVolumeClaim: not null } => "persistentVolumeClaim",
        { Projected: not null } => "projected",
        { Secret: not null } => "secret",
        { HostPath: not null } => "hostPath",
        { Nfs: not null } => "nfs",
        { Iscsi: not null } => "iscsi",
        { GitRepo: not null } => "gitRepo",
        { Image: not null } => "image",
        { Rbd: not null } => "rbd",
        { Cephfs: not null } => "cephfs",
        { Glusterfs: not null } => "glusterfs",
        { FlexVolume: not null } => "flexVolume",
        _ => null,
    };

    private sealed record Container(string Path, V1SecurityContext? SecurityContext, IList<V1ContainerPort>? Ports);
}
