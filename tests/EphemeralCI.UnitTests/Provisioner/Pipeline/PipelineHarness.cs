using EphemeralCI.RunnerTemplates;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Teardown;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.UnitTests.Provisioner.Pipeline;

/// <summary>
/// One pipeline stage with fakes around it: the provisioner's database on in-memory SQLite (with the
/// same save interceptors as the service), a fake backend and token issuer — no Postgres, RabbitMQ or bwrap.
/// </summary>
public sealed class PipelineHarness : IAsyncDisposable
{
    public const string Instance = "unit";
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly ServiceProvider _services;

    public FakeBackend Backend { get; } = new();
    public RunnerSlots Slots => _services.GetRequiredService<RunnerSlots>();
    public OutboxSignal<ProvisionerDbContext> Outbox => _services.GetRequiredService<OutboxSignal<ProvisionerDbContext>>();

    public PipelineHarness(RunnerLimitOptions? limits = null, Action<IServiceCollection>? configure = null)
    {
        _connection.Open(); // an in-memory database lives as long as its connection
        var services = new ServiceCollection()
            .AddLogging()
            .AddMetrics()
            .AddSingleton(TimeProvider.System)
            .AddSingleton<RunnerSlots>()
            .AddSingleton<RunnerSlotsInterceptor>()
            .AddSingleton<OutboxSignal<ProvisionerDbContext>>()
            .AddSingleton<OutboxCommitInterceptor<ProvisionerDbContext>>()
            .AddDbContext<ProvisionerDbContext>((sp, o) => o.UseSqlite(_connection)
                .AddInterceptors(sp.GetRequiredService<RunnerSlotsInterceptor>(), sp.GetRequiredService<OutboxCommitInterceptor<ProvisionerDbContext>>()))
            .AddSingleton<IRunnerBackend>(Backend)
            .AddSingleton<RunnerBackends>()
            .AddSingleton(new RunnerTemplateCatalog(new Dictionary<string, RunnerTemplateDefinition> { ["default"] = new() }))
            .AddSingleton<JobLocks>()
            .AddSingleton<LimitDecisions>()
            .AddSingleton<ProvisionerDrain>()
            .AddSingleton<TeardownMetrics>()
            .AddSingleton<RunnerTeardown>()
            .AddSingleton<RunnerReaper>()
            .AddSingleton<RunnerSupervisor>()
            .AddSingleton<IJobTokenIssuer, FakeTokens>()
            .AddSingleton(_ =>
            {
                var instance = new ProvisionerInstance();
                instance.Set(Instance);
                return instance;
            });
        services.AddOptions<TeardownOptions>();
        services.AddOptions<RunnerLimitOptions>().Configure(o =>
        {
            if (limits is null) return;
            foreach (var (k, v) in limits.PerBackend) o.PerBackend[k] = v;
            o.PerRepository = limits.PerRepository;
        });
        configure?.Invoke(services);
        _services = services.BuildServiceProvider();
        using var scope = _services.CreateScope();
        scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>().Database.EnsureCreated();
    }

    public AsyncServiceScope Scope() => _services.CreateAsyncScope();

    public T Get<T>(AsyncServiceScope scope) where T : notnull => scope.ServiceProvider.GetRequiredService<T>();

    public async Task<List<RunnerRecord>> RunnersAsync()
    {
        await using var scope = Scope();
        return await Get<ProvisionerDbContext>(scope).Runners.AsNoTracking().ToListAsync();
    }

    public async Task<List<string>> OutboxTypesAsync(Guid? messageId = null)
    {
        await using var scope = Scope();
        return await Get<ProvisionerDbContext>(scope).OutboxMessages.AsNoTracking()
            .Where(m => messageId == null || m.MessageId == messageId).OrderBy(m => m.Id).Select(m => m.MessageType).ToListAsync()
            .ContinueWith(t => t.Result.Select(type => type.Split(',')[0].Split('.').Last()).ToList());
    }

    public async Task AddAsync(RunnerRecord runner)
    {
        await using var scope = Scope();
        var db = Get<ProvisionerDbContext>(scope);
        db.Runners.Add(runner);
        await db.SaveChangesAsync();
    }

    public static RunJob Job(string repository = "acme/app", string template = "default") =>
        new(Guid.NewGuid(), template, repository, "refs/heads/main", 60, DateTimeOffset.UtcNow, new string('a', 40));

    public static RunnerRecord Row(RunJob job, RunnerState state, string? instance = Instance) => new()
    {
        JobId = job.JobId,
        RunnerId = RunnerRecord.RunnerIdFor(job.JobId),
        State = state,
        Instance = instance,
        Template = job.RunnerTemplate,
        Backend = "local",
        Repository = job.Repository,
        Ref = job.Ref,
        TimeoutSeconds = job.TimeoutSeconds,
        CreatedAt = DateTimeOffset.UtcNow,
    };

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private sealed class FakeTokens : IJobTokenIssuer
    {
        public Task<string> IssueAsync(JobTokenRequest request, CancellationToken cancellationToken = default) => Task.FromResult($"token-for-{request.JobId:N}");
    }
}

/// <summary>A backend named "local" that records what it was asked; a start fails while <see cref="FailStarts"/> says why.</summary>
public sealed class FakeBackend : IRunnerBackend
{
    private readonly List<string> _calls = [];
    public string Name => "local";
    public string? FailStarts { get; set; }
    public List<RunnerLaunch> Launches { get; } = [];
    public TaskCompletionSource<int> Exit { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<string> Calls { get { lock (_calls) return _calls.ToList(); } }

    public string? MissingPrerequisite() => null;

    public Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct)
    {
        Record($"start {launch.JobId}");
        if (FailStarts is { } why) throw new RunnerStartException(why);
        Launches.Add(launch);
        return Task.FromResult(new RunnerHandle(launch.RunnerId, 4242, Exit.Task));
    }

    public Task KillAsync(RunnerRef runner, CancellationToken ct) { Record($"kill {runner.JobId}"); return Task.CompletedTask; }
    public Task DestroyAsync(RunnerRef runner, CancellationToken ct) { Record($"destroy {runner.JobId}"); return Task.CompletedTask; }
    public bool IsAlive(RunnerRef runner) => false;
    public Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct) => Task.CompletedTask;

    private void Record(string call) { lock (_calls) _calls.Add(call); }
}
