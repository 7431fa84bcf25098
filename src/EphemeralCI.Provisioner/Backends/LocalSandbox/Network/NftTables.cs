using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Network;

/// <summary>
/// The machine's nftables tables, one <c>table FAMILY NAME</c> line each, as <c>nft list tables</c> prints
/// them: read in this process through libnftables, the library <c>nft</c> itself is a front end to (the
/// teardown check of every runner spawned <c>nft</c> for this, about 10 ms of a 2-core machine each time).
/// Where the library cannot be loaded, <c>nft</c> is run. Null when listing failed (no permission, no nftables).
/// </summary>
[UnsupportedOSPlatform("windows")]
public static partial class NftTables
{
    private const string Library = "libnftables.so.1";
    private static readonly Lazy<bool> InProcess = new(() => NativeLibrary.TryLoad(Library, out _));

    public static async Task<string?> ListAsync(CancellationToken ct) =>
        InProcess.Value ? List() : await ListWithToolAsync(ct);

    /// <summary>The names of the tables of <paramref name="family"/> (e.g. <c>inet</c>) in a listing.</summary>
    public static IEnumerable<string> Names(string listing, string family)
    {
        foreach (var line in listing.Split('\n'))
        {
            if (line.Trim().Split(' ') is ["table", var f, var name] && f == family) yield return name;
        }
    }

    private static string? List()
    {
        // A context per call: libnftables' contexts are not meant to be shared between threads.
        var ctx = NftCtxNew(0);
        if (ctx == IntPtr.Zero) return null;
        try
        {
            // Both buffered: output is read back, and an error must not go to this process's stderr.
            if (NftCtxBufferOutput(ctx) != 0 || NftCtxBufferError(ctx) != 0) return null;
            if (NftRunCmdFromBuffer(ctx, "list tables") != 0) return null;
            return Marshal.PtrToStringUTF8(NftCtxGetOutputBuffer(ctx)) ?? "";
        }
        finally
        {
            NftCtxFree(ctx);
        }
    }

    private static async Task<string?> ListWithToolAsync(CancellationToken ct)
    {
        if (!File.Exists(EgressNetwork.NftPath)) return null;
        var (code, output, _) = await EgressNetwork.ExecAsync(EgressNetwork.NftPath, ["list", "tables"], null, ct);
        return code == 0 ? output : null;
    }

    [LibraryImport(Library, EntryPoint = "nft_ctx_new")]
    private static partial IntPtr NftCtxNew(uint flags);

    [LibraryImport(Library, EntryPoint = "nft_ctx_free")]
    private static partial void NftCtxFree(IntPtr ctx);

    [LibraryImport(Library, EntryPoint = "nft_ctx_buffer_output")]
    private static partial int NftCtxBufferOutput(IntPtr ctx);

    [LibraryImport(Library, EntryPoint = "nft_ctx_buffer_error")]
    private static partial int NftCtxBufferError(IntPtr ctx);

    [LibraryImport(Library, EntryPoint = "nft_ctx_get_output_buffer")]
    private static partial IntPtr NftCtxGetOutputBuffer(IntPtr ctx);

    [LibraryImport(Library, EntryPoint = "nft_run_cmd_from_buffer", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NftRunCmdFromBuffer(IntPtr ctx, string buffer);
}
