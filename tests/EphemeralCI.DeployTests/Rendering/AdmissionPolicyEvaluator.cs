using System.Text.Json.Nodes;
using Cel;
using k8s;
using k8s.Models;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>
/// Runs a rendered ValidatingAdmissionPolicy the way the API server does: its variables in order,
/// then each validation, on the object as JSON maps and lists. CEL is evaluated by the Cel library;
/// Kubernetes' own CEL extensions are not available, which is why the policy uses standard CEL only.
/// </summary>
public sealed class AdmissionPolicyEvaluator(V1ValidatingAdmissionPolicy policy)
{
    /// <summary>The messages of the validations the object fails (empty: admitted).</summary>
    public IReadOnlyList<string> Refusals(object kubernetesObject)
    {
        var environment = new CelEnvironment(null, null);
        var variables = new Dictionary<string, object?>();
        var input = new Dictionary<string, object?>
        {
            ["object"] = ToCel(JsonNode.Parse(KubernetesJson.Serialize(kubernetesObject))),
            ["variables"] = variables,
        };
        foreach (var variable in policy.Spec.Variables ?? [])
        {
            variables[variable.Name] = environment.Program(variable.Expression, input);
        }
        var refusals = new List<string>();
        foreach (var validation in policy.Spec.Validations)
        {
            var result = environment.Program(validation.Expression, input);
            if (result is not true) refusals.Add(validation.Message ?? validation.Expression);
        }
        return refusals;
    }

    /// <summary>JSON as CEL sees it: objects are maps, arrays lists, numbers ints when whole.</summary>
    private static object? ToCel(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => ToCel(p.Value)),
        JsonArray a => a.Select(ToCel).ToList(),
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v => v.GetValue<string>(),
        _ => throw new NotSupportedException(node.GetType().Name),
    };
}
