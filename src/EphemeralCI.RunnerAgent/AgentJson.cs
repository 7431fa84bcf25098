using System.Text.Json;
using System.Text.Json.Serialization;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// Every JSON shape the agent reads or writes, with serializers generated at compile time: the agent
/// is compiled ahead of time, so there is no reflection to fall back on and no JIT to pay at a job's start.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(RunnerJob))]
[JsonSerializable(typeof(RunnerStepEvent))]
[JsonSerializable(typeof(RunnerCacheEvent))]
[JsonSerializable(typeof(RunnerCompletion))]
[JsonSerializable(typeof(RunnerCommands))]
[JsonSerializable(typeof(TerminalControl))]
[JsonSerializable(typeof(SecretsExchangeRequest))]
[JsonSerializable(typeof(SecretsExchangeResponse))]
internal sealed partial class AgentJson : JsonSerializerContext;

internal sealed record SecretsExchangeRequest(IReadOnlyList<string> Secrets);

internal sealed record SecretsExchangeResponse(Guid JobId, Dictionary<string, string>? Secrets, Dictionary<string, string>? Denied);
