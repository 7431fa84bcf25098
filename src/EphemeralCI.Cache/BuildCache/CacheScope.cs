using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Cache.BuildCache;

/// <summary>
/// The part of the bucket one repository may see (which ref sees which entry is the database's business). Keys are prefixed with the SHA-256 of the
/// repository name exactly as the job token carries it, so no repository name, however odd
/// ('..', '/', unicode), can reach outside its own prefix or into another's.
/// Not case-folded: two spellings at worst miss each other's entries, never share them.
/// </summary>
public static class CacheScope
{
    public const string BuildCacheRoot = "build-cache";

    /// <summary>Root of the archives of keyed entries (Actions protocols, runner agent): <c>entries/{sha256(repository)}/{id}-{nonce}</c>.</summary>
    public const string EntriesRoot = "entries";

    /// <summary>Lowercase hex SHA-256 of the UTF-8 repository name.</summary>
    public static string RepositoryId(string repository)
    {
        ArgumentException.ThrowIfNullOrEmpty(repository);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(repository)));
    }

    /// <summary>
    /// <c>build-cache/{sha256(repository)}/{ac|cas}-{hash}-{entry id}-{nonce}</c>: one object per entry (repository + ref +
    /// address), never written twice, so an eviction racing a new write of the same address cannot delete the new object.
    /// </summary>
    public static string BuildCacheObjectKey(string repository, BuildCacheAddress address, long entryId) =>
        $"{BuildCacheRoot}/{RepositoryId(repository)}/{address.Kind.ToPathSegment()}-{address.Hash}-{entryId}-{Guid.NewGuid():N}";
}
