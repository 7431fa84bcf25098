using System.Collections.Concurrent;
using System.Net;
using EphemeralCI.IntegrationTests.Infrastructure;
using Google.Protobuf;

namespace EphemeralCI.EndToEndTests.Telemetry;

/// <summary>One span as an OTLP exporter sent it: ids in lower-case hex, the parent null for a root.</summary>
public sealed record ReceivedSpan(
    string Service, string Scope, string TraceId, string SpanId, string? ParentSpanId, string Name, int Kind,
    IReadOnlyDictionary<string, string> Attributes)
{
    public string? Attribute(string key) => Attributes.GetValueOrDefault(key);
    public override string ToString() => $"[{Service} {Scope}] {Name} ({TraceId[..8]}/{SpanId[..8]} <- {ParentSpanId?[..8] ?? "root"})";
}

/// <summary>
/// An OTLP/HTTP (protobuf) receiver on loopback, standing in for the collector an operator would run
/// (the Aspire dashboard, an OpenTelemetry Collector): a service is pointed at it with
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> + <c>OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf</c> and every span it
/// exports lands in <see cref="Spans"/>. Metrics and logs are accepted and dropped. The wire format is
/// read with Google.Protobuf's <see cref="CodedInputStream"/> (field numbers from opentelemetry-proto's
/// trace/v1, common/v1 and resource/v1), not a hand-rolled decoder.
/// </summary>
public sealed class OtlpTraceReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ConcurrentQueue<ReceivedSpan> _spans = new();

    public Uri Endpoint { get; }
    public IReadOnlyCollection<ReceivedSpan> Spans => _spans.ToArray();

    public OtlpTraceReceiver()
    {
        Endpoint = new Uri($"http://127.0.0.1:{FreePort.Next()}/");
        _listener.Prefixes.Add(Endpoint.ToString());
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    /// <summary>What a service needs in its environment to export here, soon after each span ends.</summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment => new Dictionary<string, string>
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
    };

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (HttpListenerException) { return; }
            try
            {
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                if (context.Request.Url?.AbsolutePath == "/v1/traces")
                {
                    foreach (var span in ReadExportRequest(body.ToArray())) _spans.Enqueue(span);
                }
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
            }
            catch (InvalidProtocolBufferException)
            {
                context.Response.StatusCode = 400;
            }
            context.Response.Close();
        }
    }

    /// <summary>ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }</summary>
    public static List<ReceivedSpan> ReadExportRequest(byte[] payload)
    {
        var spans = new List<ReceivedSpan>();
        var input = new CodedInputStream(payload);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1) ReadResourceSpans(input.ReadBytes(), spans);
            else input.SkipLastField();
        }
        return spans;
    }

    /// <summary>ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }</summary>
    private static void ReadResourceSpans(ByteString bytes, List<ReceivedSpan> spans)
    {
        var service = "";
        var scopes = new List<ByteString>();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                // Resource { repeated KeyValue attributes = 1; }
                case 1: service = ReadResourceAttributes(input.ReadBytes()).GetValueOrDefault("service.name", ""); break;
                case 2: scopes.Add(input.ReadBytes()); break;
                default: input.SkipLastField(); break;
            }
        }
        foreach (var scope in scopes) ReadScopeSpans(scope, service, spans);
    }

    /// <summary>ScopeSpans { InstrumentationScope scope = 1 { string name = 1; }; repeated Span spans = 2; }</summary>
    private static void ReadScopeSpans(ByteString bytes, string service, List<ReceivedSpan> spans)
    {
        var scopeName = "";
        var raw = new List<ByteString>();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1:
                    var scope = input.ReadBytes().CreateCodedInput();
                    uint t;
                    while ((t = scope.ReadTag()) != 0)
                    {
                        if (WireFormat.GetTagFieldNumber(t) == 1) scopeName = scope.ReadString();
                        else scope.SkipLastField();
                    }
                    break;
                case 2: raw.Add(input.ReadBytes()); break;
                default: input.SkipLastField(); break;
            }
        }
        foreach (var span in raw) spans.Add(ReadSpan(span, service, scopeName));
    }

    /// <summary>Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; SpanKind kind = 6; repeated KeyValue attributes = 9; }</summary>
    private static ReceivedSpan ReadSpan(ByteString bytes, string service, string scope)
    {
        string traceId = "", spanId = "", name = "";
        string? parent = null;
        var kind = 0;
        var attributes = new Dictionary<string, string>();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: traceId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 2: spanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 4:
                    var p = input.ReadBytes();
                    parent = p.Length == 0 ? null : Convert.ToHexStringLower(p.Span);
                    break;
                case 5: name = input.ReadString(); break;
                case 6: kind = input.ReadEnum(); break;
                case 9:
                    var (key, value) = ReadKeyValue(input.ReadBytes());
                    attributes[key] = value;
                    break;
                default: input.SkipLastField(); break;
            }
        }
        return new ReceivedSpan(service, scope, traceId, spanId, parent, name, kind, attributes);
    }

    /// <summary>Resource { repeated KeyValue attributes = 1; }</summary>
    private static Dictionary<string, string> ReadResourceAttributes(ByteString bytes)
    {
        var result = new Dictionary<string, string>();
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1)
            {
                var (k, v) = ReadKeyValue(input.ReadBytes());
                result[k] = v;
            }
            else input.SkipLastField();
        }
        return result;
    }

    /// <summary>KeyValue { string key = 1; AnyValue value = 2; }; AnyValue's scalars as text (string_value = 1, bool_value = 2, int_value = 3, double_value = 4).</summary>
    private static (string Key, string Value) ReadKeyValue(ByteString bytes)
    {
        string key = "", value = "";
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: key = input.ReadString(); break;
                case 2:
                    var any = input.ReadBytes().CreateCodedInput();
                    uint t;
                    while ((t = any.ReadTag()) != 0)
                    {
                        value = WireFormat.GetTagFieldNumber(t) switch
                        {
                            1 => any.ReadString(),
                            2 => any.ReadBool() ? "true" : "false",
                            3 => any.ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                            4 => any.ReadDouble().ToString(System.Globalization.CultureInfo.InvariantCulture),
                            _ => Skip(any),
                        };
                    }
                    break;
                default: input.SkipLastField(); break;
            }
        }
        return (key, value);
    }

    private static string Skip(CodedInputStream input)
    {
        input.SkipLastField();
        return "";
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop; } catch (ObjectDisposedException) { }
        _listener.Close();
    }
}
