using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Cache.Git;

/// <summary>
/// Keeps the mirrors small (every <c>Checkout:MaintenanceInterval</c>): <c>git maintenance run --task=gc</c> in each,
/// then, while all of them together exceed <c>Checkout:MirrorBudgetBytes</c>, deletes the least recently fetched one
/// (the next job of that repository fetches it again); then holds the <see cref="PackCache"/> to its budget.
/// </summary>
public sealed class MirrorMaintenance(GitMirrors mirrors, PackCache packs, IOptions<CheckoutOptions> options, ILogger<MirrorMaintenance> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        if (!options.Value.Enabled) return;
        using var timer = new PeriodicTimer(options.Value.MaintenanceInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or TimeoutException or InvalidOperationException)
            {
                logger.LogWarning("Mirror maintenance failed: {Error}", ex.Message);
            }
        }
    }

    /// <summary>One pass: gc every mirror, then hold the budget. Returns the repositories' mirrors deleted.</summary>
    public async Task<IReadOnlyList<string>> RunOnceAsync(CancellationToken ct)
    {
        var all = Mirrors().ToList();
        foreach (var mirror in all)
        {
            var gc = await GitCommand.RunAsync(mirror, ["maintenance", "run", "--task=gc", "--quiet"], TimeSpan.FromMinutes(30), ct);
            if (!gc.Succeeded) logger.LogWarning("git gc of mirror {Mirror} failed: {Error}", mirror, gc.Error.Trim());
        }
        var sized = all.Select(m => (Path: m, Bytes: SizeOf(m), LastFetch: LastFetch(m))).OrderBy(m => m.LastFetch).ToList();
        var total = sized.Sum(m => m.Bytes);
        var deleted = new List<string>();
        foreach (var m in sized)
        {
            if (total <= options.Value.MirrorBudgetBytes) break;
            Directory.Delete(m.Path, recursive: true);
            total -= m.Bytes;
            deleted.Add(m.Path);
            logger.LogInformation("Deleted mirror {Mirror} ({Bytes} bytes) to stay within Checkout:MirrorBudgetBytes", m.Path, m.Bytes);
        }
        if (packs.Trim() is > 0 and var freed) logger.LogInformation("Trimmed the pack cache by {Bytes} bytes to stay within Checkout:PackCacheBytes", freed);
        return deleted;
    }

    private IEnumerable<string> Mirrors() =>
        Directory.Exists(mirrors.Root)
            ? Directory.EnumerateDirectories(mirrors.Root).SelectMany(owner => Directory.EnumerateDirectories(owner, "*.git"))
            : [];

    private static long SizeOf(string folder) =>
        new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    private static DateTime LastFetch(string mirror)
    {
        var marker = Path.Combine(mirror, GitMirrors.LastFetchFile);
        return File.Exists(marker) ? File.GetLastWriteTimeUtc(marker) : DateTime.MinValue;
    }
}
