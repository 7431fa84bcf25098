using System.Net;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Teardown;
using k8s;
using k8s.Autorest;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// Asks the API server whether anything of a destroyed runner is left: its batch/v1 Job (404), its
/// pods (none by the job's label, terminating ones included) and its token Secret (404). The Secret
/// is probed with a server-side dry-run delete: the provisioner may not read Secrets (that would hand
/// it every token), and a dry run changes nothing. Beside the backend, so the RBAC test's scan of its
/// calls (tests/EphemeralCI.DeployTests/RbacTests.cs) covers these too.
/// </summary>
public sealed class KubernetesTeardownVerifier(KubernetesConnection connection) : ITeardownVerifier
{
    public string Backend => KubernetesRunnerBackend.BackendName;

    public async Task<IReadOnlyList<TeardownCheck>> VerifyAsync(RunnerRef target, CancellationToken ct)
    {
        var client = connection.Client;
        var ns = connection.Options.Namespace;
        var jobName = RunnerLabels.JobName(target.JobId);
        var secretName = RunnerLabels.SecretName(target.JobId);

        var job = await GoneAsync(() => client.BatchV1.ReadNamespacedJobAsync(jobName, ns, cancellationToken: ct));
        var pods = await client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: RunnerLabels.SelectorFor(target.JobId), cancellationToken: ct);
        var secret = await GoneAsync(() => client.CoreV1.DeleteNamespacedSecretAsync(secretName, ns, dryRun: "All", cancellationToken: ct));
        var podNames = pods.Items.Select(p => p.Metadata.Name + (p.Metadata.DeletionTimestamp is null ? "" : " (terminating)")).ToList();
        return
        [
            new TeardownCheck("kubernetes.job", job, $"jobs/{ns}/{jobName}", job ? null : "the Job still exists"),
            new TeardownCheck("kubernetes.pods", podNames.Count == 0, $"pods/{ns}?{RunnerLabels.SelectorFor(target.JobId)}",
                podNames.Count == 0 ? null : string.Join(", ", podNames)),
            new TeardownCheck("kubernetes.secret", secret, $"secrets/{ns}/{secretName}", secret ? null : "the token Secret still exists"),
        ];
    }

    /// <summary>True when the API server answers 404 Not Found.</summary>
    private static async Task<bool> GoneAsync(Func<Task> probe)
    {
        try
        {
            await probe();
            return false;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return true;
        }
    }
}
