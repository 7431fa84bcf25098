using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.WebUi;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class JobsPageQueryTests
{
    [Fact]
    public void Filters_are_trimmed_and_times_without_an_offset_are_utc_with_a_bare_to_date_taking_its_whole_day()
    {
        var query = new JobsPageQuery(" acme/widgets ", "refs/heads/main", "", "failed", "2026-12-01T08:30", "2026-12-03", null);
        Assert.Null(query.Validate());
        var f = query.Filters;
        Assert.Equal("acme/widgets", f.Repository);
        Assert.Null(f.Template);
        Assert.Equal(JobStatus.Failed, f.StatusValue);
        Assert.Equal(new DateTimeOffset(2026, 12, 1, 8, 30, 0, TimeSpan.Zero), f.FromValue);
        Assert.Equal(new DateTimeOffset(2026, 12, 4, 0, 0, 0, TimeSpan.Zero), f.ToValue);
        Assert.Equal(new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero), new JobsPageQuery(null, null, null, null, "2026-12-03T12:00:00+02:00", null, null).Filters.FromValue);
        // The paging links carry the filters as typed, not the cursor.
        Assert.Equal(["acme/widgets", "refs/heads/main", null, "failed", "2026-12-01T08:30", "2026-12-03"], f.Parameters.Select(p => p.Value));
    }

    [Theory]
    [InlineData("status", null, null, null, "nearly")]
    [InlineData("from", "yesterday", null, null, null)]
    [InlineData("to", null, "2026-13-01", null, null)]
    [InlineData("before", null, null, "123_not-a-guid", null)]
    [InlineData("before", null, null, "-1_00000000000000000000000000000000", null)]
    public void A_filter_that_does_not_parse_is_named(string field, string? from, string? to, string? before, string? status)
    {
        var problem = new JobsPageQuery(null, null, null, status, from, to, before).Validate();
        Assert.NotNull(problem);
        Assert.StartsWith(field + ":", problem);
    }

    [Fact]
    public void A_cursor_round_trips_the_last_rows_time_and_id()
    {
        var job = new EphemeralCI.Intake.Model.Job
        {
            Id = Guid.NewGuid(), CreatedAt = new DateTimeOffset(2026, 12, 4, 13, 0, 0, 123, TimeSpan.Zero),
            Repository = "acme/widgets", Ref = "refs/heads/main", CommitSha = new string('0', 40), RunnerTemplate = "default", Spec = "{}",
        };
        var cursor = JobsPageQuery.Cursor(job);
        Assert.Equal((job.CreatedAt, job.Id), new JobsPageQuery(null, null, null, null, null, null, cursor).Filters.Cursor);
    }
}
