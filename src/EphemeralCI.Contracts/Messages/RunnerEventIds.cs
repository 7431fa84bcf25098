using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Contracts.Messages;

/// <summary>
/// One id per (runner, event type): a runner starts, finishes and is destroyed once, so whoever
/// announces or records one of these — first time, redelivery, or the provisioner's answer when the
/// intake asks again — uses the same id, and the receiver's unique index turns every repeat into a
/// no-op. A name-based (version 5 style) UUID: SHA-1 of the pair, as RFC 9562 §5.5 does it.
/// </summary>
public static class RunnerEventIds
{
    public static Guid For(string runnerId, string eventType)
    {
        ArgumentException.ThrowIfNullOrEmpty(runnerId);
        ArgumentException.ThrowIfNullOrEmpty(eventType);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(Encoding.UTF8.GetBytes($"eci-runner-event\n{runnerId}\n{eventType}"), hash);
        var bytes = hash[..16];
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50); // version 5
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 4122 variant
        return new Guid(bytes, bigEndian: true);
    }
}
