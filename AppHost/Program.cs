using EphemeralCI.AppHost;

// The EphemeralCI topology. Backing services first (containers, or external services given as
// connection strings: see Infrastructure.cs), then the four services with what each one uses.
var builder = DistributedApplication.CreateBuilder(args);

var infra = builder.AddEphemeralCIInfrastructure();

// Shared between the provisioner (mints job tokens) and the services that check them.
var jobTokenKey = builder.AddParameter("job-token-signing-key",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);

var intake = builder.AddProject<Projects.EphemeralCI_Intake_Host>("intake")
    .WithHttpHealthCheck("/health")
    .WithExternalHttpEndpoints()
    .WithReference(infra.IntakeDb).WaitFor(infra.IntakeDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithReference(infra.RabbitMq).WaitFor(infra.RabbitMq)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey)
    .WithBootstrapAdminKey(builder.Configuration);

var secretsBroker = builder.AddProject<Projects.EphemeralCI_SecretsBroker_Host>("secrets-broker")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.SecretsDb).WaitFor(infra.SecretsDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey);

var cache = builder.AddProject<Projects.EphemeralCI_Cache_Host>("cache")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.CacheDb).WaitFor(infra.CacheDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithMinio(infra)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey);

builder.AddProject<Projects.EphemeralCI_Provisioner_Host>("provisioner")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.ProvisionerDb).WaitFor(infra.ProvisionerDb)
    .WithReference(infra.RabbitMq).WaitFor(infra.RabbitMq)
    .WithReference(intake).WaitFor(intake)
    .WithReference(secretsBroker)
    .WithReference(cache)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey);

builder.Build().Run();
