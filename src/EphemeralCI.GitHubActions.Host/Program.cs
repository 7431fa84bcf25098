using EphemeralCI.GitHubActions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
if (!builder.AddGitHubActions())
{
    Console.Error.WriteLine("The GitHub Actions adapter is off: set GitHubActions:AppId (docs/github-actions.md).");
    return 1;
}
builder.Services.AddProblemDetails();

var app = builder.Build();

app.UseExceptionHandler();
app.MapDefaultEndpoints();
app.MapGitHubActions();

await app.RunAsync();
return 0;
