using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// The provisioner as its own process (EphemeralCI.Provisioner.Host), so a test can SIGKILL it: a
/// database and virtual host of its own, a <see cref="FakeIntake"/> reached through a
/// <see cref="TcpProxy"/> the test can take down, and RunJob published as the intake would.
/// <see cref="StartPeerAsync"/> starts a second instance on the same database and queues.
/// </summary>
public sealed class ProvisionerProcess : IAsyncLifetime
{
    private readonly ProvisionerProcess? _first;
    private string _signingKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private readonly StringBuilder _output = new();
    private Process? _process;
    private IBusControl? _bus;
    private string _database = "";
    private string _rabbit = "";

    /// <summary>Most runners at once, so a burst has jobs waiting, starting and running.</summary>
    public const int Limit = 3;
    public FakeIntake Intake { get; private set; } = null!;
    public TcpProxy IntakeProxy { get; private set; } = null!;
    /// <summary>The provisioner's way to RabbitMQ and to Postgres: taking one down is an outage of that service for it alone (the shared services stay up).</summary>
    public TcpProxy BrokerProxy { get; private set; } = null!;
    public TcpProxy DatabaseProxy { get; private set; } = null!;
    public string WorkRoot { get; } = Path.Combine(Path.GetTempPath(), "eci-prov-proc", Guid.NewGuid().ToString("N")[..8]);
    private readonly string _cgroupName = "eci-test-" + Guid.NewGuid().ToString("N")[..8];
    public string Output { get { lock (_output) return _output.ToString(); } }
    public int? Pid => _process is { HasExited: false } p ? p.Id : null;
    /// <summary>Its <c>Provisioner:Instance:Name</c>.</summary>
    public string InstanceName { get; }
    /// <summary>Short, so a test sees a dead instance's runners adopted within seconds.</summary>
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(6);
    public const string AdminToken = "provisioner-admin-token-for-tests-0123456789";

    /// <summary>A client of this process's HTTP API (its address as it logged it), with the admin token.</summary>
    public HttpClient AdminClient()
    {
        var listening = System.Text.RegularExpressions.Regex.Match(Output, @"Now listening on: (http://\S+)");
        Assert.True(listening.Success, "the process never said where it listens:\n" + Output);
        var client = new HttpClient { BaseAddress = new Uri(listening.Groups[1].Value.TrimEnd('/') + "/") };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    public ProvisionerProcess() => InstanceName = "first";

    private ProvisionerProcess(ProvisionerProcess first, string name)
    {
        _first = first;
        InstanceName = name;
        _signingKey = first._signingKey;
        _database = first._database;
        _rabbit = first._rabbit;
        _bus = first._bus;
        Intake = first.Intake;
        IntakeProxy = first.IntakeProxy;
        BrokerProxy = first.BrokerProxy;
        DatabaseProxy = first.DatabaseProxy;
    }

    /// <summary>Another instance (own work root and cgroup, same database, queues and intake), started; the caller disposes it.</summary>
    public async Task<ProvisionerProcess> StartPeerAsync(string name)
    {
        var peer = new ProvisionerProcess(this, name);
        await peer.StartAsync(consumers: 2);
        return peer;
    }

    public async Task InitializeAsync()
    {
        Intake = await FakeIntake.StartAsync(_signingKey);
        IntakeProxy = TcpProxy.Start(Intake.Address);
        _database = await RealServices.CreateDatabaseAsync("provproc");
        _rabbit = await RealServices.CreateRabbitMqVirtualHostAsync("provproc");
        var rabbit = new Uri(_rabbit);
        BrokerProxy = TcpProxy.Start(new Uri($"tcp://127.0.0.1:{rabbit.Port}"));
        var postgres = new Npgsql.NpgsqlConnectionStringBuilder(_database);
        DatabaseProxy = TcpProxy.Start(new Uri($"tcp://127.0.0.1:{postgres.Port}"));
        var amqp = new Uri(_rabbit);
        _bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(amqp, h =>
        {
            var user = amqp.UserInfo.Split(':', 2);
            h.Username(Uri.UnescapeDataString(user[0]));
            h.Password(Uri.UnescapeDataString(user[1]));
        }));
        await _bus.StartAsync();
        await StartAsync();
    }

    /// <summary>Starts the provisioner process and waits until it consumes run-job (with <paramref name="consumers"/> counting its peers).</summary>
    public async Task StartAsync(int consumers = 1)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "EphemeralCI.Provisioner.Host.dll") },
            // No appsettings of another project: everything comes from the environment below.
            WorkingDirectory = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "eci-prov-proc-cwd")).FullName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ConnectionStrings__provisionerdb"] = new Npgsql.NpgsqlConnectionStringBuilder(_database) { Port = DatabaseProxy.Address.Port, Pooling = true }.ConnectionString,
            ["ConnectionStrings__rabbitmq"] = new UriBuilder(_rabbit) { Port = BrokerProxy.Address.Port }.Uri.ToString(),
            ["JobTokens__SigningKey"] = _signingKey,
            ["Provisioner__IntakeUrl"] = IntakeProxy.Address.ToString(),
            ["Provisioner__LocalSandbox__WorkRoot"] = WorkRoot,
            ["Provisioner__LocalSandbox__CgroupName"] = _cgroupName,
            ["Provisioner__Limits__PerBackend__local"] = Limit.ToString(),
            ["Provisioner__Reconciler__IntervalSeconds"] = "5",
            ["Provisioner__Instance__Name"] = InstanceName,
            ["Provisioner__Instance__HeartbeatInterval"] = "00:00:01",
            ["Provisioner__Instance__LeaseDuration"] = LeaseDuration.ToString(),
            ["RunnerTemplates__default__Backend"] = "local",
            ["RunnerTemplates__default__DefaultTimeoutSeconds"] = "120",
            ["RunnerTemplates__default__MaxTimeoutSeconds"] = "300",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Provisioner__AdminToken"] = AdminToken,
            ["DOTNET_ENVIRONMENT"] = "Production",
        })
        {
            psi.Environment[key] = value;
        }
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        // Its own lease taken (logged once it is) and its consumer up: the consumer count alone may still count a peer just killed.
        await ProvisionerFixture.WaitUntilAsync(async () => _process.HasExited || (Output.Contains($"Provisioner instance {InstanceName}", StringComparison.Ordinal) && await ConsumersAsync("run-job") >= consumers),
            () => $"the provisioner process to consume run-job; output:\n{Output}", seconds: 120);
        Assert.False(_process.HasExited, Output);
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a crash or an OOM kill.</summary>
    public async Task KillAsync()
    {
        _process!.Kill(entireProcessTree: false);
        await _process.WaitForExitAsync();
    }

    public Task PublishAsync(RunJob job) => _bus!.Publish(job);

    public static RunJob RunJob(Guid jobId) => new(jobId, "default", "acme/app", "main", 120, DateTimeOffset.UtcNow);

    public async Task<List<RunnerRecord>> RunnersAsync(IReadOnlyCollection<Guid> jobIds)
    {
        await using var db = Db();
        return await db.Runners.AsNoTracking().Where(r => jobIds.Contains(r.JobId)).ToListAsync();
    }

    /// <summary>How many RunnerStarted each job's runner announced (outbox rows).</summary>
    public async Task<Dictionary<Guid, int>> StartedAnnouncementsAsync(IReadOnlyCollection<Guid> jobIds)
    {
        await using var db = Db();
        var rows = await db.OutboxMessages.AsNoTracking().Where(m => m.MessageType.Contains(nameof(RunnerStarted))).Select(m => m.Body).ToListAsync();
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        var started = rows.Select(b => JsonSerializer.Deserialize<RunnerStarted>(b, options)!.JobId).ToList();
        return jobIds.ToDictionary(id => id, id => started.Count(s => s == id));
    }

    private ProvisionerDbContext Db() =>
        new(new DbContextOptionsBuilder<ProvisionerDbContext>().UseNpgsql(_database).Options);

    private async Task<int> ConsumersAsync(string queue)
    {
        var amqp = new Uri(RealServices.RabbitMq);
        using var http = new HttpClient { BaseAddress = new Uri(RealServices.RabbitMqManagement) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(amqp.UserInfo))));
        using var response = await http.GetAsync($"/api/queues/{Uri.EscapeDataString(new Uri(_rabbit).AbsolutePath.TrimStart('/'))}/{queue}");
        if (response.StatusCode == HttpStatusCode.NotFound) return 0;
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.TryGetProperty("consumers", out var c) ? c.GetInt32() : 0;
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: false);
            await _process.WaitForExitAsync();
        }
        if (_first is not null)
        {
            // A peer: the services are the first instance's to close.
            try { Directory.Delete(WorkRoot, recursive: true); } catch (DirectoryNotFoundException) { }
            return;
        }
        if (_bus is not null) await _bus.StopAsync();
        await IntakeProxy.DisposeAsync();
        await BrokerProxy.DisposeAsync();
        await DatabaseProxy.DisposeAsync();
        await Intake.DisposeAsync();
        try { Directory.Delete(WorkRoot, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}

/// <summary>A TCP forwarder on a fixed local port that a test can stop (refusing connections, cutting open ones) and start again.</summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly IPEndPoint _target;
    private readonly int _port;
    private TcpListener? _listener;
    private CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _open = [];

    private TcpProxy(Uri target, int port)
    {
        _target = new IPEndPoint(IPAddress.Parse(target.Host), target.Port);
        _port = port;
    }

    public Uri Address => new($"http://127.0.0.1:{_port}/");

    public static TcpProxy Start(Uri target)
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var proxy = new TcpProxy(target, port);
        proxy.Resume();
        return proxy;
    }

    /// <summary>Listens again on the same port.</summary>
    public void Resume()
    {
        _stop = new CancellationTokenSource();
        _listener = new TcpListener(IPAddress.Loopback, _port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Start();
        var listener = _listener;
        var stop = _stop.Token;
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await listener.AcceptTcpClientAsync(stop); }
                catch (Exception) { return; }
                _ = Task.Run(() => PipeAsync(client, stop));
            }
        });
    }

    /// <summary>Refuses new connections and cuts the open ones: the intake is down.</summary>
    public void Pause()
    {
        _stop.Cancel();
        _listener?.Stop();
        lock (_open)
        {
            foreach (var c in _open) c.Dispose();
            _open.Clear();
        }
    }

    private async Task PipeAsync(TcpClient client, CancellationToken stop)
    {
        using var upstream = new TcpClient();
        lock (_open) { _open.Add(client); _open.Add(upstream); }
        try
        {
            await upstream.ConnectAsync(_target, stop);
            var a = client.GetStream();
            var b = upstream.GetStream();
            await Task.WhenAny(a.CopyToAsync(b, stop), b.CopyToAsync(a, stop));
        }
        catch (Exception) { }
        finally
        {
            client.Dispose();
            lock (_open) { _open.Remove(client); _open.Remove(upstream); }
        }
    }

    public ValueTask DisposeAsync()
    {
        Pause();
        return ValueTask.CompletedTask;
    }
}
