using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.IntegrationTests.Fakes.FakeKubernetes;

/// <summary>
/// A FAKE Kubernetes API server, in process, for tests only (no cluster runs on our machines).
/// It implements exactly what the Kubernetes runner backend uses, over real HTTP so the real
/// KubernetesClient talks to it: pods, secrets (v1) and jobs (batch/v1) — create, get, list by
/// label selector, watch (<c>?watch=true</c>, one JSON event per line), merge-patch, delete with
/// the garbage collector's cascade (deleting a Job with Background/Foreground propagation deletes
/// its pods and every object it owns; with none or Orphan, they stay, as batch/v1 does). It plays
/// the Job controller (a Job makes one pod) and, through the test hooks, the scheduler and
/// kubelet (scheduled → image pulled → running → succeeded/failed, or stuck).
/// </summary>
public sealed class FakeKubernetesApiServer : IAsyncDisposable
{
    private static readonly Dictionary<string, (string ApiVersion, string Kind, string Group)> Resources = new()
    {
        ["pods"] = ("v1", "Pod", ""),
        ["secrets"] = ("v1", "Secret", ""),
        ["jobs"] = ("batch/v1", "Job", "batch"),
        ["events"] = ("v1", "Event", ""),
    };

    private readonly Lock _gate = new();
    private readonly Dictionary<(string Resource, string Ns, string Name), JsonObject> _objects = [];
    private readonly List<Subscriber> _watchers = [];
    private readonly List<(string Name, string? Propagation)> _jobDeletes = [];
    private readonly HashSet<string> _stuckPods = [];
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private long _resourceVersion = 1000;

    /// <summary>Namespaces that exist; creating in any other fails with 404, as on a cluster.</summary>
    public HashSet<string> Namespaces { get; } = ["ephemeralci-runners"];

    public Uri Address { get; private set; } = null!;

    private FakeKubernetesApiServer(WebApplication app) => _app = app;

    public static async Task<FakeKubernetesApiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http1AndHttp2));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var fake = new FakeKubernetesApiServer(app);
        foreach (var prefix in new[] { "/api/v1", "/apis/batch/v1" })
        {
            app.MapPost(prefix + "/namespaces/{ns}/{resource}", (string ns, string resource, HttpContext http) => fake.CreateAsync(ns, resource, http));
            app.MapGet(prefix + "/namespaces/{ns}/{resource}", (string ns, string resource, HttpContext http) => fake.ListOrWatchAsync(ns, resource, http));
            app.MapGet(prefix + "/namespaces/{ns}/{resource}/{name}", (string ns, string resource, string name) => fake.Get(ns, resource, name));
            app.MapMethods(prefix + "/namespaces/{ns}/{resource}/{name}", ["PATCH"], (string ns, string resource, string name, HttpContext http) => fake.PatchAsync(ns, resource, name, http));
            app.MapDelete(prefix + "/namespaces/{ns}/{resource}/{name}", (string ns, string resource, string name, HttpContext http) => fake.DeleteAsync(ns, resource, name, http));
        }
        await app.StartAsync();
        fake.Address = new Uri(app.Urls.First());
        return fake;
    }

    // ---- what tests look at ----

    public IReadOnlyList<V1Pod> Pods(string? selector = null) => List<V1Pod>("pods", selector);
    public IReadOnlyList<V1Secret> Secrets(string? selector = null) => List<V1Secret>("secrets", selector);
    public IReadOnlyList<V1Job> Jobs(string? selector = null) => List<V1Job>("jobs", selector);

    /// <summary>Every Job delete request, with the propagation policy it asked for.</summary>
    public IReadOnlyList<(string Name, string? Propagation)> JobDeletes { get { lock (_gate) return [.. _jobDeletes]; } }

    /// <summary>How many watch connections on pods are open now.</summary>
    public int OpenWatches => OpenWatchesOf("pods");

    /// <summary>How many watch connections on one resource (pods, events) are open now.</summary>
    public int OpenWatchesOf(string resource) { lock (_gate) return _watchers.Count(w => w.Resource == resource); }

    /// <summary>The pod the fake Job controller made for a Job, once it exists.</summary>
    public async Task<V1Pod> WaitForPodOfJobAsync(string jobName, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            if (Pods($"job-name={jobName}").FirstOrDefault() is { } pod) return pod;
            await Task.Delay(20, cts.Token);
        }
    }

    /// <summary>Ends every open watch, as an API server does at its timeout or on restart.</summary>
    public void DropWatches()
    {
        lock (_gate)
        {
            foreach (var w in _watchers) w.Lines.Writer.TryComplete();
        }
    }

    // ---- test hooks: the scheduler and the kubelet ----

    public void SchedulePod(string name, string node = "fake-node-1") => UpdatePod(name, pod =>
    {
        pod.Spec.NodeName = node;
        SetCondition(pod, "PodScheduled", "True", null, null);
    });

    public void PullImage(string name) => UpdatePod(name, pod =>
    {
        var c = Agent(pod);
        c.ImageID = $"docker-pullable://{c.Image}@sha256:{new string('a', 64)}";
        c.State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } };
    });

    public void StartPod(string name) => UpdatePod(name, pod =>
    {
        pod.Status.Phase = "Running";
        pod.Status.StartTime ??= DateTime.UtcNow;
        Agent(pod).State = new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = DateTime.UtcNow } };
        SetCondition(pod, "Ready", "True", null, null);
    });

    /// <summary>The agent exits: the pod succeeds (0) or fails, and its Job completes or fails with it (backoffLimit 0).</summary>
    public void FinishPod(string name, int exitCode)
    {
        string? jobName = null;
        UpdatePod(name, pod =>
        {
            pod.Status.Phase = exitCode == 0 ? "Succeeded" : "Failed";
            Agent(pod).State = new V1ContainerState
            {
                Terminated = new V1ContainerStateTerminated { ExitCode = exitCode, Reason = exitCode == 0 ? "Completed" : "Error", FinishedAt = DateTime.UtcNow },
            };
            jobName = pod.Metadata.Labels is { } l && l.TryGetValue("job-name", out var j) ? j : null;
        });
        if (jobName is not null) UpdateJob(jobName, job =>
        {
            job.Status ??= new V1JobStatus();
            job.Status.Active = 0;
            if (exitCode == 0) job.Status.Succeeded = 1; else job.Status.Failed = 1;
            job.Status.CompletionTime = DateTime.UtcNow;
            job.Status.Conditions = [new V1JobCondition
            {
                Type = exitCode == 0 ? "Complete" : "Failed", Status = "True",
                Reason = exitCode == 0 ? null : "BackoffLimitExceeded", LastTransitionTime = DateTime.UtcNow,
            }];
        });
    }

    /// <summary>The kubelet cannot pull the image: the container waits with <paramref name="reason"/> for ever.</summary>
    public void FailImagePull(string name, string reason = "ErrImagePull", string message = "rpc error: code = NotFound desc = failed to pull and unpack image: not found") =>
        UpdatePod(name, pod =>
        {
            pod.Spec.NodeName ??= "fake-node-1";
            SetCondition(pod, "PodScheduled", "True", null, null);
            Agent(pod).State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = reason, Message = message } };
        });

    /// <summary>The scheduler finds no node for the pod.</summary>
    /// <summary>
    /// The pod will not go away: as with a finalizer nobody removes (a stuck CSI driver, a node that stopped
    /// answering), a delete only marks it terminating (deletionTimestamp) and it stays.
    /// </summary>
    public void StickPod(string name) { lock (_gate) _stuckPods.Add(name); }

    /// <summary>Every delete request by resource and name, dry runs included (with their dryRun value).</summary>
    public IReadOnlyList<(string Resource, string Name, string? DryRun)> Deletes { get { lock (_gate) return [.. _deletes]; } }
    private readonly List<(string Resource, string Name, string? DryRun)> _deletes = [];

    public void MakeUnschedulable(string name, string message = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.") =>
        UpdatePod(name, pod => SetCondition(pod, "PodScheduled", "False", "Unschedulable", message));

    // ---- the API ----

    private async Task<IResult> CreateAsync(string ns, string resource, HttpContext http)
    {
        if (!Resources.TryGetValue(resource, out var type)) return Status(404, "NotFound", $"the server could not find the requested resource ({resource})");
        var body = await JsonNode.ParseAsync(http.Request.Body) as JsonObject;
        var name = body?["metadata"]?["name"]?.GetValue<string>();
        if (body is null || string.IsNullOrEmpty(name)) return Status(422, "Invalid", $"{resource} \"\" is invalid: metadata.name: Required value");
        if (name.Length > 63 && resource != "secrets") return Status(422, "Invalid", $"{resource} \"{name}\" is invalid: metadata.name: must be no more than 63 characters");
        if (body["metadata"]?["namespace"]?.GetValue<string>() is { } bodyNs && bodyNs != ns)
        {
            return Status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
        }
        lock (_gate)
        {
            if (!Namespaces.Contains(ns)) return Status(404, "NotFound", $"namespaces \"{ns}\" not found");
            if (_objects.ContainsKey((resource, ns, name))) return Status(409, "AlreadyExists", $"{Plural(resource, type.Group)} \"{name}\" already exists");
            Stamp(body, ns, type);
            Store(resource, ns, name, body, WatchEventType.Added);
            if (resource == "jobs") CreatePodForJob(ns, body);
            return Json(body, 201);
        }
    }

    private IResult Get(string ns, string resource, string name)
    {
        lock (_gate)
        {
            return _objects.TryGetValue((resource, ns, name), out var obj) ? Json(obj) : NotFound(resource, name);
        }
    }

    private async Task<IResult> ListOrWatchAsync(string ns, string resource, HttpContext http)
    {
        if (!Resources.TryGetValue(resource, out var type)) return Status(404, "NotFound", $"the server could not find the requested resource ({resource})");
        LabelSelector selector;
        try { selector = LabelSelector.Parse(http.Request.Query["labelSelector"]); }
        catch (FormatException ex) { return Status(400, "BadRequest", ex.Message); }

        var watch = http.Request.Query["watch"].ToString() is "true" or "1";
        if (!watch)
        {
            lock (_gate)
            {
                var items = new JsonArray(_objects.Where(o => o.Key.Resource == resource && o.Key.Ns == ns && selector.Matches(o.Value))
                    .OrderBy(o => o.Key.Name, StringComparer.Ordinal).Select(o => (JsonNode)o.Value.DeepClone()).ToArray());
                return Json(new JsonObject
                {
                    ["apiVersion"] = type.ApiVersion,
                    ["kind"] = type.Kind + "List",
                    ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
                    ["items"] = items,
                });
            }
        }

        // A watch with no resourceVersion starts with every matching object as ADDED, then streams changes.
        var subscriber = new Subscriber(resource, ns, selector, Channel.CreateUnbounded<string>());
        lock (_gate)
        {
            foreach (var (key, obj) in _objects.Where(o => o.Key.Resource == resource && o.Key.Ns == ns && selector.Matches(o.Value)))
            {
                subscriber.Lines.Writer.TryWrite(EventLine(WatchEventType.Added, obj));
            }
            _watchers.Add(subscriber);
        }
        using var timeout = int.TryParse(http.Request.Query["timeoutSeconds"], out var seconds) && seconds > 0
            ? new CancellationTokenSource(TimeSpan.FromSeconds(seconds)) : new CancellationTokenSource();
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, timeout.Token, _stopping.Token);
        try
        {
            http.Response.StatusCode = 200;
            http.Response.ContentType = "application/json";
            await http.Response.StartAsync(ended.Token);
            await foreach (var line in subscriber.Lines.Reader.ReadAllAsync(ended.Token))
            {
                await http.Response.WriteAsync(line + "\n", ended.Token);
                await http.Response.Body.FlushAsync(ended.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            lock (_gate) _watchers.Remove(subscriber);
        }
        return Results.Empty;
    }

    private async Task<IResult> PatchAsync(string ns, string resource, string name, HttpContext http)
    {
        if (http.Request.ContentType?.StartsWith("application/merge-patch+json", StringComparison.Ordinal) != true)
        {
            return Status(415, "UnsupportedMediaType", $"the fake supports only merge patches, not '{http.Request.ContentType}'");
        }
        var patch = await JsonNode.ParseAsync(http.Request.Body);
        lock (_gate)
        {
            if (!_objects.TryGetValue((resource, ns, name), out var current)) return NotFound(resource, name);
            var patched = (JsonObject)MergePatch(current.DeepClone(), patch)!;
            patched["metadata"]!["resourceVersion"] = NextVersion();
            Store(resource, ns, name, patched, WatchEventType.Modified);
            return Json(patched);
        }
    }

    private async Task<IResult> DeleteAsync(string ns, string resource, string name, HttpContext http)
    {
        string? propagation = http.Request.Query["propagationPolicy"].FirstOrDefault();
        if (http.Request.ContentLength is > 0 || http.Request.Headers.ContentType.Count > 0)
        {
            var options = await JsonNode.ParseAsync(http.Request.Body);
            propagation ??= options?["propagationPolicy"]?.GetValue<string>();
        }
        string? dryRun = http.Request.Query["dryRun"].FirstOrDefault();
        lock (_gate)
        {
            _deletes.Add((resource, name, dryRun));
            if (resource == "jobs" && dryRun is null) _jobDeletes.Add((name, propagation));
            if (!_objects.TryGetValue((resource, ns, name), out var obj)) return NotFound(resource, name);
            // A server-side dry run answers as the delete would, and changes nothing.
            if (dryRun == "All") return Json(obj.DeepClone().AsObject());
            // batch/v1 Jobs orphan their pods unless asked otherwise (a legacy default kubectl hides).
            var cascade = propagation is "Background" or "Foreground" || (propagation is null && resource != "jobs");
            DeleteLocked(resource, ns, name, cascade);
            if (resource == "pods") return Json(obj);
            return Json(new JsonObject
            {
                ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Success",
                ["details"] = new JsonObject { ["name"] = name, ["kind"] = resource, ["uid"] = obj["metadata"]?["uid"]?.GetValue<string>() },
            });
        }
    }

    // ---- the garbage collector and the Job controller ----

    private void DeleteLocked(string resource, string ns, string name, bool cascade)
    {
        if (resource == "pods" && _stuckPods.Contains(name) && _objects.TryGetValue((resource, ns, name), out var stuck))
        {
            if (stuck["metadata"]!["deletionTimestamp"] is null)
            {
                stuck["metadata"]!["deletionTimestamp"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
                stuck["metadata"]!["finalizers"] = new JsonArray("example.com/never-released");
                Store(resource, ns, name, stuck, WatchEventType.Modified);
            }
            return;
        }
        if (!_objects.Remove((resource, ns, name), out var obj)) return;
        Emit(resource, ns, WatchEventType.Deleted, obj);
        var uid = obj["metadata"]?["uid"]?.GetValue<string>();
        foreach (var (key, dependent) in _objects.Where(o => o.Key.Ns == ns && Owners(o.Value).Contains(uid)).ToList())
        {
            if (cascade)
            {
                DeleteLocked(key.Resource, key.Ns, key.Name, cascade: true);
            }
            else
            {
                var refs = dependent["metadata"]!["ownerReferences"]!.AsArray();
                foreach (var r in refs.Where(r => r?["uid"]?.GetValue<string>() == uid).ToList()) refs.Remove(r);
                Store(key.Resource, key.Ns, key.Name, dependent, WatchEventType.Modified);
            }
        }
    }

    private static IEnumerable<string?> Owners(JsonObject obj) =>
        (obj["metadata"]?["ownerReferences"] as JsonArray ?? []).Select(r => r?["uid"]?.GetValue<string>());

    private void CreatePodForJob(string ns, JsonObject jobJson)
    {
        var job = KubernetesJson.Deserialize<V1Job>(jobJson.ToJsonString());
        var uid = job.Metadata.Uid;
        var labels = new Dictionary<string, string>(job.Spec.Template.Metadata?.Labels ?? new Dictionary<string, string>())
        {
            ["job-name"] = job.Metadata.Name,
            ["batch.kubernetes.io/job-name"] = job.Metadata.Name,
            ["controller-uid"] = uid,
            ["batch.kubernetes.io/controller-uid"] = uid,
        };
        var spec = job.Spec.Template.Spec;
        var pod = new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = $"{job.Metadata.Name}-{Guid.NewGuid().ToString("N")[..5]}",
                NamespaceProperty = ns,
                Labels = labels,
                Annotations = job.Spec.Template.Metadata?.Annotations,
                OwnerReferences = [new V1OwnerReference { ApiVersion = "batch/v1", Kind = "Job", Name = job.Metadata.Name, Uid = uid, Controller = true, BlockOwnerDeletion = true }],
            },
            Spec = spec,
            Status = new V1PodStatus
            {
                Phase = "Pending",
                Conditions = [],
                ContainerStatuses = spec.Containers.Select(c => new V1ContainerStatus
                {
                    Name = c.Name, Image = c.Image, ImageID = "", Ready = false, RestartCount = 0,
                    State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } },
                }).ToList(),
            },
        };
        var podJson = JsonNode.Parse(KubernetesJson.Serialize(pod))!.AsObject();
        Stamp(podJson, ns, Resources["pods"]);
        Store("pods", ns, pod.Metadata.Name, podJson, WatchEventType.Added);

        job.Spec.Selector ??= new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["batch.kubernetes.io/controller-uid"] = uid } };
        job.Status = new V1JobStatus { Active = 1, StartTime = DateTime.UtcNow };
        var updated = JsonNode.Parse(KubernetesJson.Serialize(job))!.AsObject();
        updated["metadata"]!["resourceVersion"] = NextVersion();
        Store("jobs", ns, job.Metadata.Name, updated, WatchEventType.Modified);
    }

    private void UpdatePod(string name, Action<V1Pod> change) => Update("pods", name, change);

    private void UpdateJob(string name, Action<V1Job> change) => Update("jobs", name, change);

    private void Update<T>(string resource, string name, Action<T> change)
    {
        lock (_gate)
        {
            var (key, json) = _objects.FirstOrDefault(o => o.Key.Resource == resource && o.Key.Name == name);
            if (json is null) throw new InvalidOperationException($"the fake has no {resource} named {name}");
            var obj = KubernetesJson.Deserialize<T>(json.ToJsonString());
            change(obj);
            var updated = JsonNode.Parse(KubernetesJson.Serialize(obj))!.AsObject();
            updated["metadata"]!["resourceVersion"] = NextVersion();
            Store(resource, key.Ns, name, updated, WatchEventType.Modified);
        }
    }

    private static V1ContainerStatus Agent(V1Pod pod) => pod.Status.ContainerStatuses[0];

    private static void SetCondition(V1Pod pod, string type, string status, string? reason, string? message)
    {
        pod.Status.Conditions ??= [];
        var existing = pod.Status.Conditions.FirstOrDefault(c => c.Type == type);
        if (existing is not null) pod.Status.Conditions.Remove(existing);
        pod.Status.Conditions.Add(new V1PodCondition { Type = type, Status = status, Reason = reason, Message = message, LastTransitionTime = DateTime.UtcNow });
    }

    // ---- plumbing ----

    private void Stamp(JsonObject obj, string ns, (string ApiVersion, string Kind, string Group) type)
    {
        obj["apiVersion"] = type.ApiVersion;
        obj["kind"] = type.Kind;
        var meta = obj["metadata"]!.AsObject();
        meta["namespace"] = ns;
        meta["uid"] = Guid.NewGuid().ToString();
        meta["resourceVersion"] = NextVersion();
        meta["creationTimestamp"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
    }

    private string NextVersion() => Interlocked.Increment(ref _resourceVersion).ToString(CultureInfo.InvariantCulture);

    private void Store(string resource, string ns, string name, JsonObject obj, WatchEventType type)
    {
        _objects[(resource, ns, name)] = obj;
        Emit(resource, ns, type, obj);
    }

    private void Emit(string resource, string ns, WatchEventType type, JsonObject obj)
    {
        var line = EventLine(type, obj);
        foreach (var w in _watchers.Where(w => w.Resource == resource && w.Ns == ns && w.Selector.Matches(obj))) w.Lines.Writer.TryWrite(line);
    }

    private static string EventLine(WatchEventType type, JsonObject obj) =>
        new JsonObject { ["type"] = type.ToString().ToUpperInvariant(), ["object"] = obj.DeepClone() }.ToJsonString();

    private IReadOnlyList<T> List<T>(string resource, string? selector)
    {
        var parsed = LabelSelector.Parse(selector);
        lock (_gate)
        {
            return _objects.Where(o => o.Key.Resource == resource && parsed.Matches(o.Value))
                .Select(o => KubernetesJson.Deserialize<T>(o.Value.ToJsonString())).ToList();
        }
    }

    /// <summary>RFC 7386 JSON merge patch.</summary>
    private static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject) return patch?.DeepClone();
        var result = target as JsonObject ?? new JsonObject();
        foreach (var (key, value) in patchObject)
        {
            if (value is null) result.Remove(key);
            else result[key] = MergePatch(result[key]?.DeepClone(), value);
        }
        return result;
    }

    private static string Plural(string resource, string group) => group.Length == 0 ? resource : $"{resource}.{group}";

    private static IResult NotFound(string resource, string name) =>
        Status(404, "NotFound", $"{Plural(resource, Resources.TryGetValue(resource, out var t) ? t.Group : "")} \"{name}\" not found");

    private static IResult Json(JsonObject obj, int status = 200) =>
        Results.Text(obj.ToJsonString(), "application/json", statusCode: status);

    private static IResult Status(int code, string reason, string message) => Json(new JsonObject
    {
        ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(),
        ["status"] = "Failure", ["message"] = message, ["reason"] = reason, ["code"] = code,
    }, code);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        DropWatches();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private sealed record Subscriber(string Resource, string Ns, LabelSelector Selector, Channel<string> Lines);
}
