using System.Threading.Channels;

namespace EphemeralCI.Intake.Attestations;

/// <summary>Jobs that may now be attested (their runner was destroyed, or they became terminal); <see cref="AttestationSweep"/> reads them.</summary>
public sealed class AttestationSignal
{
    private readonly Channel<Guid> _jobs = Channel.CreateBounded<Guid>(new BoundedChannelOptions(10_000)
    {
        // A burst larger than this is not lost: the periodic sweep finds those jobs too.
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    public void Notify(Guid jobId) => _jobs.Writer.TryWrite(jobId);

    public ChannelReader<Guid> Reader => _jobs.Reader;
}
