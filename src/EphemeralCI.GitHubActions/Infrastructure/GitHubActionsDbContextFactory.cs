using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace EphemeralCI.GitHubActions.Infrastructure;

/// <summary>For <c>dotnet ef migrations add</c> only: the tools need a context without starting the host.</summary>
public sealed class GitHubActionsDbContextFactory : IDesignTimeDbContextFactory<GitHubActionsDbContext>
{
    public GitHubActionsDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<GitHubActionsDbContext>()
            .UseNpgsql("Host=localhost;Database=githubactionsdb")
            .UseSnakeCaseNamingConvention()
            .Options);
}
