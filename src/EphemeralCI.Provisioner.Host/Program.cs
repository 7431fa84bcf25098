using EphemeralCI.Provisioner;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddProvisioner();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapProvisioner();

await app.RunAsync();
