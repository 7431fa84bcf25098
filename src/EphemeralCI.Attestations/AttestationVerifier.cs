using System.Text.Json;

namespace EphemeralCI.Attestations;

/// <summary>What the verifier is told to expect beyond the envelope itself (from the job as the API shows it, or given on the command line).</summary>
public sealed record ExpectedSubject(Guid? JobId = null, string? Repository = null, string? CommitSha = null);

/// <summary>The verdict: valid only with no problem; what the statement says, for the summary.</summary>
public sealed record AttestationVerification(
    bool Valid,
    IReadOnlyList<string> Problems,
    string? KeyId,
    JobStatement? Statement)
{
    public string? JobId => Statement?.Predicate.RunDetails.Metadata.InvocationId;
}

/// <summary>
/// Checks a job attestation: the DSSE signature (ES256 over PAE, by a key of the JWKS named in the
/// envelope), the statement's types, that the subject is the predicate's repository and commit (and
/// what the caller expects), and that the runner's teardown check passed. Every problem is listed.
/// </summary>
public static class AttestationVerifier
{
    public static AttestationVerification Verify(DsseEnvelope envelope, JsonWebKeySet jwks, ExpectedSubject? expected = null)
    {
        var problems = new List<string>();
        if (envelope.PayloadType != AttestationFormat.PayloadType)
        {
            problems.Add($"payloadType is '{envelope.PayloadType}', expected '{AttestationFormat.PayloadType}'");
        }
        byte[] payload;
        try
        {
            payload = Convert.FromBase64String(envelope.Payload ?? "");
        }
        catch (FormatException)
        {
            return new(false, [.. problems, "the payload is not base64"], null, null);
        }

        string? validKey = null;
        foreach (var signature in envelope.Signatures ?? [])
        {
            using var key = jwks.FindP256(signature.KeyId ?? "");
            if (key is null)
            {
                problems.Add($"signing key '{signature.KeyId}' is not an EC P-256 key of the JWKS");
                continue;
            }
            byte[] sig;
            try { sig = Convert.FromBase64String(signature.Sig ?? ""); }
            catch (FormatException) { problems.Add($"the signature by '{signature.KeyId}' is not base64"); continue; }
            if (Dsse.Verify(envelope.PayloadType ?? "", payload, sig, key))
            {
                validKey = signature.KeyId;
                break;
            }
            problems.Add($"the signature by '{signature.KeyId}' does not match the payload");
        }
        if (envelope.Signatures is not { Count: > 0 }) problems.Add("the envelope has no signature");
        // One good signature is enough; the failures of the others are not the verdict.
        if (validKey is not null) problems.RemoveAll(p => p.StartsWith("signing key", StringComparison.Ordinal) || p.StartsWith("the signature", StringComparison.Ordinal));

        JobStatement? statement = null;
        try
        {
            statement = JsonSerializer.Deserialize<JobStatement>(payload, AttestationFormat.Json);
        }
        catch (JsonException ex)
        {
            problems.Add($"the payload is not a job statement: {ex.Message}");
        }
        if (statement is not null) problems.AddRange(CheckStatement(statement, expected));
        else if (problems.Count == 0) problems.Add("the payload is empty");
        return new(problems.Count == 0, problems, validKey, statement);
    }

    private static IEnumerable<string> CheckStatement(JobStatement s, ExpectedSubject? expected)
    {
        if (s.Type != AttestationFormat.StatementType) yield return $"_type is '{s.Type}', expected '{AttestationFormat.StatementType}'";
        if (s.PredicateType != AttestationFormat.PredicateType) yield return $"predicateType is '{s.PredicateType}', expected '{AttestationFormat.PredicateType}'";
        if (s.Predicate?.BuildDefinition?.ExternalParameters is not { } job || s.Predicate.RunDetails?.Metadata is not { } metadata)
        {
            yield return "the predicate has no buildDefinition.externalParameters or runDetails.metadata";
            yield break;
        }
        if (s.Subject is not [var subject])
        {
            yield return $"the statement has {s.Subject?.Count ?? 0} subjects, expected 1 (the repository at its commit)";
        }
        else
        {
            if (subject.Name != job.Repository) yield return $"the subject is '{subject.Name}', but the job's repository is '{job.Repository}'";
            if (subject.Digest?.GetValueOrDefault(AttestationFormat.GitCommitDigest) is not { } commit || !commit.Equals(job.CommitSha, StringComparison.OrdinalIgnoreCase))
            {
                yield return $"the subject's gitCommit is not the job's commit {job.CommitSha}";
            }
        }
        if (expected?.JobId is { } id && metadata.InvocationId != id.ToString()) yield return $"the attestation is of job {metadata.InvocationId}, not {id}";
        if (expected?.Repository is { } repository && job.Repository != repository) yield return $"the attestation is of repository '{job.Repository}', not '{repository}'";
        if (expected?.CommitSha is { } sha && !job.CommitSha.Equals(sha, StringComparison.OrdinalIgnoreCase)) yield return $"the attestation is of commit {job.CommitSha}, not {sha}";
        if (s.Predicate.Teardown is not { } teardown) yield return "the runner's teardown was not verified";
        else if (!teardown.Passed)
        {
            yield return "the runner's teardown check failed: " +
                string.Join("; ", (teardown.Checks ?? []).Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}"));
        }
        // A retried job's lost runners ran its code with its token too: each must be proven gone as well.
        foreach (var earlier in s.Predicate.EarlierAttempts ?? [])
        {
            if (earlier.Teardown is not { Passed: true } t)
            {
                yield return $"the runner of attempt {earlier.Attempt} ({earlier.RunnerId}) was not verified gone" +
                    (earlier.Teardown is { } failed ? ": " + string.Join("; ", (failed.Checks ?? []).Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}")) : "");
            }
        }
    }
}
