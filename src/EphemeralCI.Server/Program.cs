using EphemeralCI.Server;

var builder = WebApplication.CreateBuilder(args);

if (!builder.AddEphemeralCIServer()) return 1;

var app = builder.Build();

app.MapEphemeralCIServer();

await app.RunAsync();
return 0;
