using EphemeralCI.Cache;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddCache();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapCache();

await app.RunAsync();
