using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Persistence;

public static class ModuleDatabaseExtensions
{
    /// <summary>
    /// The module's DbContext on Postgres when <c>ConnectionStrings:{connectionName}</c> is set (Aspire's
    /// integration: pooling, retries, health check, telemetry); otherwise, when the host registered
    /// <see cref="EmbeddedDatabases"/>, on a SQLite file of its own. With neither, Aspire's integration
    /// stops start-up naming the missing connection string.
    /// </summary>
    public static IHostApplicationBuilder AddModuleDbContext<TContext>(
        this IHostApplicationBuilder builder,
        string connectionName,
        Action<DbContextOptionsBuilder>? configure = null)
        where TContext : DbContext
    {
        var embedded = builder.Services
            .Select(d => d.ServiceType == typeof(EmbeddedDatabases) ? d.ImplementationInstance as EmbeddedDatabases : null)
            .LastOrDefault(e => e is not null);

        if (embedded is null || !string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(connectionName)))
        {
            builder.AddNpgsqlDbContext<TContext>(connectionName, configureDbContextOptions: configure);
            return builder;
        }

        var connectionString = SqliteConnectionStrings.For(embedded.PathFor(connectionName));
        builder.Services.AddDbContext<TContext>(options =>
        {
            options.UseSqlite(connectionString, sqlite => sqlite.MigrationsAssembly(embedded.MigrationsAssembly));
            options.AddInterceptors(SqliteRowVersionInterceptor.Instance, SqliteConnectionSetup.Instance);
            configure?.Invoke(options);
        });
        builder.Services.AddHealthChecks().AddDbContextCheck<TContext>($"{connectionName}-sqlite", tags: ["ready"]);
        return builder;
    }
}
