using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace EphemeralCI.Messaging;

/// <summary>
/// Receive endpoints of background messages (a provisioner's periodic warm pool report). Their publisher runs
/// untraced, so each delivery would begin a root trace of its own, every interval per instance, in the Aspire
/// dashboard: a message there that continues no trace starts none. Its receive span is recorded but not sampled,
/// and so is everything under it (the consumer's span, its database calls); a message that carries a trace
/// context still joins that trace.
/// </summary>
public static class UntracedEndpoints
{
    /// <summary>The OpenTelemetry SDK's own sampler setting.</summary>
    public const string SamplerSetting = "OTEL_TRACES_SAMPLER";

    /// <summary>Messages on <paramref name="endpointName"/> (a queue name) begin no trace.</summary>
    public static IServiceCollection AddUntracedReceiveEndpoint(this IServiceCollection services, string endpointName)
    {
        if (!services.Any(d => d.ServiceType == typeof(UntracedEndpointSampler)))
        {
            services.AddSingleton<UntracedEndpointSampler>();
            // The default sampler is parent-based too: only the roots of these endpoints change. A sampler the
            // operator chose (OTEL_TRACES_SAMPLER) is left as it is: theirs decides, these roots included.
            services.ConfigureOpenTelemetryTracerProvider((sp, tracing) =>
            {
                if (string.IsNullOrWhiteSpace(sp.GetService<IConfiguration>()?[SamplerSetting]))
                {
                    tracing.SetSampler(new ParentBasedSampler(sp.GetRequiredService<UntracedEndpointSampler>()));
                }
            });
        }
        services.AddSingleton(new UntracedEndpoint(endpointName));
        return services;
    }
}

/// <summary>A receive endpoint registered with <see cref="UntracedEndpoints.AddUntracedReceiveEndpoint"/>.</summary>
public sealed record UntracedEndpoint(string Name);

/// <summary>
/// Roots only (under <see cref="ParentBasedSampler"/>): MassTransit names a delivery's span "{queue} receive";
/// one of an untraced endpoint is kept from export (record only), and its children follow their parent.
/// </summary>
internal sealed class UntracedEndpointSampler(IEnumerable<UntracedEndpoint> endpoints) : Sampler
{
    private readonly string[] _names = [.. endpoints.Select(e => e.Name + " ")];

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
    {
        var name = samplingParameters.Name;
        return samplingParameters.Kind == ActivityKind.Consumer && _names.Any(n => name.StartsWith(n, StringComparison.Ordinal))
            ? new SamplingResult(SamplingDecision.RecordOnly)
            : new SamplingResult(SamplingDecision.RecordAndSample);
    }
}
