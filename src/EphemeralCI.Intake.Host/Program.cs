using EphemeralCI.Intake;
using Scalar.AspNetCore;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddIntake();
builder.Services.AddProblemDetails();
builder.Services.AddIntakeOpenApi();

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseWebSockets();           // interactive sessions' terminals (eci shell)

app.MapDefaultEndpoints();
app.MapOpenApi();                 // /openapi/v1.json
app.MapScalarApiReference();      // /scalar
app.MapIntake();

await app.RunAsync();
