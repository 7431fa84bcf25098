namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>How many runners hold a slot, per backend and per repository (every instance's), at one moment.</summary>
public sealed record RunnerCounts(IReadOnlyDictionary<string, int> PerBackend, IReadOnlyDictionary<string, int> PerRepository)
{
    public static readonly RunnerCounts None = new(new Dictionary<string, int>(), new Dictionary<string, int>());

    public int OnBackend(string? backend) => PerBackend.GetValueOrDefault(backend ?? "");
    public int OfRepository(string? repository) => PerRepository.GetValueOrDefault(repository ?? "");
}

/// <summary>A job waiting for a slot, as the pump sees it (oldest first).</summary>
public sealed record WaitingRunner(Guid JobId, string? Backend, string? Repository);

/// <summary>Why a runner must wait: which limit is full, and whether it is its backend's (which holds back every later job on it).</summary>
public sealed record LimitReached(string Reason, bool Backend);

/// <summary>
/// The limiter's rules, apart from the database: given who holds slots now, may one more runner start,
/// and which waiting jobs start, in arrival order. Limits come from <see cref="RunnerLimitOptions"/>.
/// </summary>
public sealed class RunnerLimitRules(RunnerLimitOptions options)
{
    public const string QueuedBehindReason = "waiting behind earlier jobs of this repository for a free runner";

    /// <summary>Why a new runner must wait, or null to start it now. Behind anyone of its repository already waiting: order within a repository is kept.</summary>
    public LimitReached? WhyWait(string? backend, string? repository, RunnerCounts holding, bool earlierOfRepositoryWaits) =>
        earlierOfRepositoryWaits ? new LimitReached(QueuedBehindReason, false) : Full(backend, repository, holding.OnBackend(backend), holding.OfRepository(repository));

    /// <summary>
    /// Which of <paramref name="waiting"/> (oldest first) start now. Strict order within a backend or a
    /// repository: once one of them must wait, the later ones wait too; a full repository holds back
    /// only that repository's jobs, a full backend every later job on it.
    /// </summary>
    public IReadOnlyList<Guid> ChooseToStart(IEnumerable<WaitingRunner> waiting, RunnerCounts holding)
    {
        var chosen = new List<Guid>();
        var blockedBackends = new HashSet<string>();
        var blockedRepositories = new HashSet<string>();
        var perBackend = new Dictionary<string, int>();
        var perRepository = new Dictionary<string, int>();
        foreach (var runner in waiting)
        {
            var (backend, repository) = (runner.Backend ?? "", runner.Repository ?? "");
            if (blockedBackends.Contains(backend) || blockedRepositories.Contains(repository)) continue;
            perBackend.TryAdd(backend, holding.OnBackend(runner.Backend));
            perRepository.TryAdd(repository, holding.OfRepository(runner.Repository));
            if (Full(runner.Backend, runner.Repository, perBackend[backend], perRepository[repository]) is { } full)
            {
                if (full.Backend) blockedBackends.Add(backend);
                blockedRepositories.Add(repository);
                continue;
            }
            chosen.Add(runner.JobId);
            perBackend[backend]++;
            perRepository[repository]++;
        }
        return chosen;
    }

    private LimitReached? Full(string? backend, string? repository, int onBackend, int ofRepository)
    {
        if (options.ForBackend(backend) is { } perBackend && onBackend >= perBackend)
        {
            return new($"waiting for a free runner: backend '{backend}' is at its limit of {perBackend} concurrent runner(s)", true);
        }
        if (options.ForRepository(repository) is { } perRepository && ofRepository >= perRepository)
        {
            return new($"waiting for a free runner: repository '{repository}' is at its limit of {perRepository} concurrent runner(s)", false);
        }
        return null;
    }
}
