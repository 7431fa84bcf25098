using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace EphemeralCI.Intake.Apis;

/// <summary>
/// Reads request bodies ourselves instead of through model binding, so that an oversized body is
/// a 413 (checked from Content-Length first, and enforced while reading for chunked uploads) and
/// broken JSON is a 400 that says where, never a 500.
/// </summary>
public static class RequestBody
{
    public readonly record struct Read<T>(T? Value, ProblemHttpResult? Problem);

    public static async Task<Read<byte[]>> ReadBytesAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        if (request.ContentLength > maxBytes) return new(null, Problems.TooLarge(maxBytes));
        var buffer = new ArrayBufferWriter<byte>(request.ContentLength is long n and > 0 ? (int)n : 4096);
        while (true)
        {
            var read = await request.Body.ReadAsync(buffer.GetMemory(8192), ct);
            if (read == 0) break;
            buffer.Advance(read);
            if (buffer.WrittenCount > maxBytes) return new(null, Problems.TooLarge(maxBytes));
        }
        return new(buffer.WrittenSpan.ToArray(), null);
    }

    public static async Task<Read<T>> ReadJsonAsync<T>(HttpRequest request, int maxBytes, CancellationToken ct) where T : class
    {
        if (!request.HasJsonContentType())
        {
            return new(null, TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType,
                title: "Unsupported media type", detail: "Send the body as application/json."));
        }
        var bytes = await ReadBytesAsync(request, maxBytes, ct);
        if (bytes.Problem is not null) return new(null, bytes.Problem);
        try
        {
            var value = JsonSerializer.Deserialize<T>(bytes.Value, JsonSerializerOptions.Web);
            return value is null
                ? new(null, Problems.BadJson("$", "The body must be a JSON object."))
                : new(value, null);
        }
        catch (JsonException ex)
        {
            // The exception's message can echo internals; the path and position are what the caller needs.
            var where = ex.LineNumber is { } line ? $" (line {line + 1}, byte {ex.BytePositionInLine + 1})" : "";
            return new(null, Problems.BadJson(ex.Path ?? "$", $"The body is not valid JSON for this endpoint at '{ex.Path ?? "$"}'{where}."));
        }
    }
}
