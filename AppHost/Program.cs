using EphemeralCI.AppHost;

// The EphemeralCI topology. Backing services first (containers, or external services given as
// connection strings: see Infrastructure.cs), then the four services with what each one uses.
var builder = DistributedApplication.CreateBuilder(args);

var infra = builder.AddEphemeralCIInfrastructure();

// Interim shared HS256 key: still required by the cache's start-up check; job tokens themselves are
// now ES256, minted by the secrets broker and checked against its JWKS (JobTokens__Authority).
var jobTokenKey = builder.AddParameter("job-token-signing-key",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// The broker's admin credential and the provisioner's credential for minting job tokens; its
// key-encryption keys (never stored in secretsdb) are parameters too (RunnerCluster.cs).
var secretsAdminToken = builder.AddParameter("secrets-admin-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
var provisionerToken = builder.AddParameter("secrets-provisioner-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// The cache's credential for reading operator-only forge credentials (ECI_* secrets) for its git mirrors.
var cacheBrokerToken = builder.AddParameter("secrets-cache-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// The intake's credential for having job attestations signed by the broker's key ring.
var attestationToken = builder.AddParameter("secrets-attestation-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// The intake's credential for reading what the cache served each job (the attestation lists those caches).
var cacheAttestationToken = builder.AddParameter("cache-attestation-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// Operators' credentials for the cache's and the provisioner's admin APIs (the dashboard's commands use them: ResourceCommands.cs).
var cacheAdminToken = builder.AddParameter("cache-admin-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
var provisionerAdminToken = builder.AddParameter("provisioner-admin-token",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
// Encrypts the intake's data-protection key ring (sign-in cookies, sealed maskedEnv values) in intakedb.
var intakeDataProtectionKey = builder.AddParameter("intake-data-protection-key",
    new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
const string BrokerUrl = "http://secrets-broker";
// Runner templates are files the platform team keeps in git; intake and provisioner read the same ones
// (published: as configuration, see RunnerTemplatesConfiguration.cs).
// With Runners:Backend=kubernetes (a published AppHost's runners in a cluster): the Kubernetes ones.
var runnerTemplates = builder.RunnerTemplatesDirectory();

var secretsBroker = builder.AddProject<Projects.EphemeralCI_SecretsBroker_Host>("secrets-broker")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.SecretsDb).WaitFor(infra.SecretsDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithReference(infra.RabbitMq).WaitFor(infra.RabbitMq)
    .WithKeyEncryptionKeys(builder)
    .WithEnvironment("SecretsBroker__AdminToken", secretsAdminToken)
    .WithEnvironment("SecretsBroker__ProvisionerToken", provisionerToken)
    .WithEnvironment("SecretsBroker__CacheToken", cacheBrokerToken)
    .WithEnvironment("SecretsBroker__AttestationToken", attestationToken)
    .WithSecretsBrokerCommands(secretsAdminToken);

var cache = builder.AddProject<Projects.EphemeralCI_Cache_Host>("cache")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.CacheDb).WaitFor(infra.CacheDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithMinio(infra)
    .WithReference(secretsBroker)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey)
    .WithEnvironment("JobTokens__Authority", BrokerUrl)
    .WithEnvironment("Checkout__SecretsBrokerUrl", BrokerUrl)
    .WithEnvironment("Checkout__SecretsBrokerToken", cacheBrokerToken)
    .WithEnvironment("Cache__AdminToken", cacheAdminToken)
    .WithEnvironment("Cache__AttestationToken", cacheAttestationToken)
    .WithCheckout(builder.Configuration)
    .WithCacheCommands(cacheAdminToken);

var intake = builder.AddProject<Projects.EphemeralCI_Intake_Host>("intake")
    .WithHttpHealthCheck("/health")
    .WithExternalHttpEndpoints()
    .WithReference(infra.IntakeDb).WaitFor(infra.IntakeDb)
    .WithReference(infra.Redis).WaitFor(infra.Redis)
    .WithReference(infra.RabbitMq).WaitFor(infra.RabbitMq)
    .WithReference(secretsBroker)
    .WithEnvironment("JobTokens__SigningKey", jobTokenKey)
    .WithEnvironment("JobTokens__Authority", BrokerUrl)
    .WithEnvironment("Attestations__SignerToken", attestationToken)
    .WithReference(cache)
    .WithEnvironment("Attestations__CacheUrl", "http://cache")
    .WithEnvironment("Attestations__CacheToken", cacheAttestationToken)
    // The web UI's Secrets and Cache pages: URLs only; an admin pastes the admin token in the page (docs/deploy.md, "Web UI admin pages").
    .WithEnvironment("Intake__Admin__SecretsBrokerUrl", BrokerUrl)
    .WithEnvironment("Intake__Admin__CacheUrl", "http://cache")
    .WithEnvironment("Intake__DataProtection__KeyEncryptionKey", intakeDataProtectionKey)
    .WithRunnerTemplates(builder, runnerTemplates)
    .WithBootstrapAdminKey(builder.Configuration)
    .WithIntakeCommands(builder.Configuration);

// Runners in a cluster call the broker (secrets) and the cache from outside Container Apps.
if (builder.UsesKubernetesRunners())
{
    secretsBroker.WithExternalHttpEndpoints();
    cache.WithExternalHttpEndpoints();
}

builder.AddProject<Projects.EphemeralCI_Provisioner_Host>("provisioner")
    .WithHttpHealthCheck("/health")
    .WithReference(infra.ProvisionerDb).WaitFor(infra.ProvisionerDb)
    .WithReference(infra.RabbitMq).WaitFor(infra.RabbitMq)
    .WithReference(intake).WaitFor(intake)
    .WithReference(secretsBroker).WaitFor(secretsBroker)
    .WithReference(cache)
    .WithEnvironment("JobTokens__Authority", BrokerUrl)
    .WithEnvironment("JobTokens__ProvisionerToken", provisionerToken)
    .WithCheckout(builder.Configuration)
    .WithRunnerTemplates(builder, runnerTemplates)
    .WithKubernetesRunners(builder)
    .WithEnvironment("Provisioner__AdminToken", provisionerAdminToken)
    .WithProvisionerCommands(provisionerAdminToken);

// Off unless GitHubActions:AppId is set: GitHub App webhooks → one-job runners through the intake (GitHubActions.cs).
builder.AddGitHubActionsAdapter(infra, intake, secretsBroker, BrokerUrl);

builder.Build().Run();
