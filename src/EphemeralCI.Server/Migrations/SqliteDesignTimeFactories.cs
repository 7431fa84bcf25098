using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.Server.Migrations;

/*
 * The SQLite migrations of every module live here, beside the only host that uses SQLite; each
 * module keeps its Postgres migrations. For `dotnet ef` only (no database is opened), e.g.
 *   dotnet ef migrations add <Name> --project src/EphemeralCI.Server --context IntakeDbContext \
 *     --output-dir Migrations/Intake --namespace EphemeralCI.Server.Migrations.Intake
 * Options must match AddModuleDbContext's SQLite branch (naming convention included).
 */
internal static class SqliteDesignTime
{
    public static DbContextOptions<T> Options<T>(string file, bool snakeCase) where T : DbContext
    {
        var options = new DbContextOptionsBuilder<T>()
            .UseSqlite($"Data Source={file}", o => o.MigrationsAssembly(typeof(ServerEntryPoint).Assembly.GetName().Name));
        if (snakeCase) options.UseSnakeCaseNamingConvention();
        return options.Options;
    }
}

internal sealed class IntakeSqliteDesignTimeFactory : IDesignTimeDbContextFactory<IntakeDbContext>
{
    public IntakeDbContext CreateDbContext(string[] args) => new(SqliteDesignTime.Options<IntakeDbContext>("intakedb.db", snakeCase: true));
}

internal sealed class ProvisionerSqliteDesignTimeFactory : IDesignTimeDbContextFactory<ProvisionerDbContext>
{
    public ProvisionerDbContext CreateDbContext(string[] args) => new(SqliteDesignTime.Options<ProvisionerDbContext>("provisionerdb.db", snakeCase: false));
}

internal sealed class SecretsSqliteDesignTimeFactory : IDesignTimeDbContextFactory<SecretsDbContext>
{
    public SecretsDbContext CreateDbContext(string[] args) => new(SqliteDesignTime.Options<SecretsDbContext>("secretsdb.db", snakeCase: true));
}

internal sealed class CacheSqliteDesignTimeFactory : IDesignTimeDbContextFactory<CacheDbContext>
{
    public CacheDbContext CreateDbContext(string[] args) => new(SqliteDesignTime.Options<CacheDbContext>("cachedb.db", snakeCase: true));
}

internal sealed class GitHubActionsSqliteDesignTimeFactory : IDesignTimeDbContextFactory<GitHubActionsDbContext>
{
    public GitHubActionsDbContext CreateDbContext(string[] args) => new(SqliteDesignTime.Options<GitHubActionsDbContext>("githubactionsdb.db", snakeCase: true));
}
