using EphemeralCI.Provisioner.Scheduling;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class JobLocksTests
{
    [Fact]
    public async Task A_second_holder_of_the_same_job_waits_until_the_first_releases()
    {
        var locks = new JobLocks();
        var job = Guid.NewGuid();
        var first = await locks.AcquireAsync(job);
        var second = locks.AcquireAsync(job);
        Assert.False(second.IsCompleted);
        first.Dispose();
        (await second).Dispose();
    }

    [Fact]
    public async Task Different_jobs_do_not_block_each_other()
    {
        var locks = new JobLocks();
        using var a = await locks.AcquireAsync(Guid.NewGuid());
        var b = locks.AcquireAsync(Guid.NewGuid());
        Assert.True(b.IsCompletedSuccessfully);
        (await b).Dispose();
    }

    [Fact]
    public async Task Disposing_twice_does_not_release_someone_elses_hold()
    {
        var locks = new JobLocks();
        var job = Guid.NewGuid();
        var first = await locks.AcquireAsync(job);
        var second = locks.AcquireAsync(job);
        first.Dispose();
        using var held = await second;
        first.Dispose();
        Assert.False(locks.AcquireAsync(job).IsCompleted);
    }
}
