using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// The embedded server's data folder (<c>EphemeralCI:DataDirectory</c>, default
/// <c>$XDG_DATA_HOME/ephemeralci</c> or <c>~/.local/share/ephemeralci</c>): one SQLite file per module,
/// cache objects, runner workspaces, and the keys the server generated for itself in <c>keys/</c>.
/// The folder is 0700 and every key file 0600: they are the only copies.
/// </summary>
public sealed class ServerDataDirectory
{
    public const string SettingName = "EphemeralCI:DataDirectory";

    private ServerDataDirectory(string root) => Root = root;

    public string Root { get; }

    public string Keys => Path.Combine(Root, "keys");

    public static ServerDataDirectory Open(IConfiguration configuration)
    {
        var root = configuration[SettingName];
        if (string.IsNullOrWhiteSpace(root))
        {
            var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            if (string.IsNullOrWhiteSpace(dataHome))
            {
                dataHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
            }
            root = Path.Combine(dataHome, "ephemeralci");
        }
        var directory = new ServerDataDirectory(Path.GetFullPath(root));
        CreatePrivateDirectory(directory.Root);
        CreatePrivateDirectory(directory.Keys);
        return directory;
    }

    /// <summary>A random key (base64 of 32 bytes) kept in <c>keys/{name}</c>, made on first use.</summary>
    public string ReadOrCreateKey(string name) =>
        ReadOrCreate(name, () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));

    /// <summary>
    /// A credential shown to the operator once: only its SHA-256 (hex) is kept, in <c>keys/{name}.sha256</c>.
    /// Returns the stored hash, and the credential itself only when it was made now.
    /// </summary>
    public (string Sha256, string? CreatedNow) ReadOrCreateCredentialHash(string name, Func<string> generate)
    {
        var path = Path.Combine(Keys, name + ".sha256");
        if (File.Exists(path)) return (File.ReadAllText(path).Trim(), null);
        var credential = generate();
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(credential)));
        WritePrivateFile(path, hash);
        return (hash, credential);
    }

    private string ReadOrCreate(string name, Func<string> generate)
    {
        var path = Path.Combine(Keys, name);
        if (File.Exists(path)) return File.ReadAllText(path).Trim();
        var value = generate();
        WritePrivateFile(path, value);
        return value;
    }

    private static void WritePrivateFile(string path, string content)
    {
        // Created with 0600 from the start (never world-readable for a moment), then moved into place.
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, new FileStreamOptions
               {
                   Mode = FileMode.Create,
                   Access = FileAccess.Write,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            stream.Write(Encoding.UTF8.GetBytes(content));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: false);
    }

    private static void CreatePrivateDirectory(string path)
    {
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
