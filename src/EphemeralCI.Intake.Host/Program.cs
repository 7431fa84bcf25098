using EphemeralCI.Intake;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddIntake();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapIntake();

await app.RunAsync();
