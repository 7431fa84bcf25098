using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>For <c>dotnet ef migrations add</c> only: the tools need a context without starting the host.</summary>
public sealed class SecretsDbContextFactory : IDesignTimeDbContextFactory<SecretsDbContext>
{
    public SecretsDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SecretsDbContext>()
            .UseNpgsql("Host=localhost;Database=secretsdb")
            .UseSnakeCaseNamingConvention()
            .Options);
}
