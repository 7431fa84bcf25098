// bubblewrap, cgroups and the 0600 key files make the all-in-one server Linux-only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace EphemeralCI.Server;

/// <summary>Names this host's assembly for tests and tools (every host has a global <c>Program</c>).</summary>
public sealed class ServerEntryPoint;
