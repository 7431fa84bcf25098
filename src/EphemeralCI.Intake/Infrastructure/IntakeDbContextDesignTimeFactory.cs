using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.Intake.Infrastructure;

/// <summary>For <c>dotnet ef migrations add</c> only: no database is contacted.</summary>
internal sealed class IntakeDbContextDesignTimeFactory : IDesignTimeDbContextFactory<IntakeDbContext>
{
    public IntakeDbContext CreateDbContext(string[] args) => new(new DbContextOptionsBuilder<IntakeDbContext>()
        .UseNpgsql("Host=localhost;Database=intakedb_design")
        .UseSnakeCaseNamingConvention()
        .Options);
}
