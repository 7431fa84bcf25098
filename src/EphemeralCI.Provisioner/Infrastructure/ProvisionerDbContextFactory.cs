using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>For <c>dotnet ef migrations add</c> only: the tools need a context without starting the host.</summary>
public sealed class ProvisionerDbContextFactory : IDesignTimeDbContextFactory<ProvisionerDbContext>
{
    public ProvisionerDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<ProvisionerDbContext>()
            .UseNpgsql("Host=localhost;Database=provisionerdb")
            .Options);
}
