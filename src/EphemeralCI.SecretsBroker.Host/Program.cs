using EphemeralCI.SecretsBroker;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddSecretsBroker();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapSecretsBroker();

await app.RunAsync();
