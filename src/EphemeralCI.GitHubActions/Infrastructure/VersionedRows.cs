using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.GitHubActions.Infrastructure;

/// <summary>The one way the adapter's version-checked rows change.</summary>
internal static class VersionedRows
{
    /// <summary>Applies <paramref name="change"/> to a fresh copy until it saves or declines (a lost race reads again); null row when unknown.</summary>
    public static async Task<(bool Applied, T? Row)> UpdateAsync<T>(IServiceScopeFactory scopes, object key, Func<T, bool> change, CancellationToken ct)
        where T : class
    {
        while (true)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
            var row = await db.Set<T>().FindAsync([key], ct);
            if (row is null || !change(row)) return (false, row);
            try
            {
                await db.SaveChangesAsync(ct);
                return (true, row);
            }
            catch (DbUpdateConcurrencyException)
            {
                // Someone moved it first: decide again on what they wrote.
            }
        }
    }
}
