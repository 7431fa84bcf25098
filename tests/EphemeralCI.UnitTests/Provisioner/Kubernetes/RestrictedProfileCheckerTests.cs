using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Kubernetes;

/// <summary>The checker itself: each rule of the restricted profile, broken once, must be caught (and named).</summary>
public sealed class RestrictedProfileCheckerTests
{
    private static V1PodSpec Compliant() =>
        RunnerPodSpecBuilder.Build(RunnerPodSpecBuilderTests.Launch(), new KubernetesOptions { IntakeUrl = "http://i" }, DateTimeOffset.UtcNow).Job.Spec.Template.Spec;

    private static V1SecurityContext Agent(V1PodSpec pod) => pod.Containers[0].SecurityContext;

    public static TheoryData<string, string> Violations => new()
    {
        { "privileged", "privileged" },
        { "hostNetwork", "hostNetwork" },
        { "hostPID", "hostPID" },
        { "hostIPC", "hostIPC" },
        { "hostPort", "hostPort" },
        { "hostPath", "hostPath" },
        { "nfs", "nfs" },
        { "allowPrivilegeEscalation-true", "allowPrivilegeEscalation" },
        { "allowPrivilegeEscalation-unset", "allowPrivilegeEscalation" },
        { "runAsNonRoot-false", "runAsNonRoot" },
        { "runAsNonRoot-unset", "runAsNonRoot" },
        { "runAsUser-0", "runAsUser" },
        { "pod-runAsUser-0", "runAsUser" },
        { "drop-missing", "drop must contain ALL" },
        { "add-SYS_ADMIN", "SYS_ADMIN" },
        { "seccomp-unconfined", "seccompProfile" },
        { "seccomp-unset", "seccompProfile" },
        { "sysctl", "kernel.msgmax" },
        { "procMount", "procMount" },
        { "selinux-user", "seLinuxOptions.user" },
        { "apparmor-unconfined", "appArmorProfile" },
        { "hostProcess", "hostProcess" },
        { "init-container", "initContainers[setup]" },
    };

    [Theory]
    [MemberData(nameof(Violations))]
    public void Each_broken_rule_is_reported(string change, string expected)
    {
        var pod = Compliant();
        Break(pod, change);
        var violations = RestrictedProfileChecker.Check(pod);
        Assert.Contains(violations, v => v.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_compliant_spec_has_no_violation_and_NET_BIND_SERVICE_may_be_added()
    {
        var pod = Compliant();
        Assert.Empty(RestrictedProfileChecker.Check(pod));
        Agent(pod).Capabilities.Add = ["NET_BIND_SERVICE"];
        Agent(pod).SeccompProfile = new V1SeccompProfile { Type = "Localhost", LocalhostProfile = "profiles/ci.json" };
        Assert.Empty(RestrictedProfileChecker.Check(pod));
    }

    [Fact]
    public void Pod_level_settings_count_for_containers_that_do_not_set_them()
    {
        var pod = Compliant();
        Agent(pod).RunAsNonRoot = null;
        Agent(pod).SeccompProfile = null;
        Assert.Empty(RestrictedProfileChecker.Check(pod));
    }

    private static void Break(V1PodSpec pod, string change)
    {
        var sc = Agent(pod);
        switch (change)
        {
            case "privileged": sc.Privileged = true; break;
            case "hostNetwork": pod.HostNetwork = true; break;
            case "hostPID": pod.HostPID = true; break;
            case "hostIPC": pod.HostIPC = true; break;
            case "hostPort": pod.Containers[0].Ports = [new V1ContainerPort { ContainerPort = 80, HostPort = 8080 }]; break;
            case "hostPath": pod.Volumes.Add(new V1Volume { Name = "docker", HostPath = new V1HostPathVolumeSource { Path = "/var/run/docker.sock" } }); break;
            case "nfs": pod.Volumes.Add(new V1Volume { Name = "share", Nfs = new V1NFSVolumeSource { Server = "nfs", Path = "/" } }); break;
            case "allowPrivilegeEscalation-true": sc.AllowPrivilegeEscalation = true; break;
            case "allowPrivilegeEscalation-unset": sc.AllowPrivilegeEscalation = null; break;
            case "runAsNonRoot-false": sc.RunAsNonRoot = false; break;
            case "runAsNonRoot-unset": sc.RunAsNonRoot = null; pod.SecurityContext.RunAsNonRoot = null; break;
            case "runAsUser-0": sc.RunAsUser = 0; break;
            case "pod-runAsUser-0": pod.SecurityContext.RunAsUser = 0; break;
            case "drop-missing": sc.Capabilities.Drop = ["NET_RAW"]; break;
            case "add-SYS_ADMIN": sc.Capabilities.Add = ["SYS_ADMIN"]; break;
            case "seccomp-unconfined": sc.SeccompProfile = new V1SeccompProfile { Type = "Unconfined" }; break;
            case "seccomp-unset": sc.SeccompProfile = null; pod.SecurityContext.SeccompProfile = null; break;
            case "sysctl": pod.SecurityContext.Sysctls = [new V1Sysctl { Name = "kernel.msgmax", Value = "1" }]; break;
            case "procMount": sc.ProcMount = "Unmasked"; break;
            case "selinux-user": sc.SeLinuxOptions = new V1SELinuxOptions { User = "system_u" }; break;
            case "apparmor-unconfined": sc.AppArmorProfile = new V1AppArmorProfile { Type = "Unconfined" }; break;
            case "hostProcess": pod.SecurityContext.WindowsOptions = new V1WindowsSecurityContextOptions { HostProcess = true }; break;
            case "init-container": pod.InitContainers = [new V1Container { Name = "setup", Image = "busybox" }]; break;
            default: throw new ArgumentOutOfRangeException(nameof(change));
        }
    }
}
