using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.Cache.Infrastructure;

/// <summary>For <c>dotnet ef migrations add</c> only: the tools need a context without starting the host.</summary>
public sealed class CacheDbContextFactory : IDesignTimeDbContextFactory<CacheDbContext>
{
    public CacheDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<CacheDbContext>()
            .UseNpgsql("Host=localhost;Database=cachedb")
            .UseSnakeCaseNamingConvention()
            .Options);
}
