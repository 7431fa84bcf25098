using System.Text;
using EphemeralCI.Intake.Logs;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class JobLogCapTests
{
    [Fact]
    public void Log_cap_keeps_what_fits_cuts_on_a_character_boundary_and_notes_the_truncation()
    {
        var body = Encoding.UTF8.GetBytes("ab✓cd"); // ✓ is 3 bytes: a b [e2 9c 93] c d
        Assert.Equal("ab✓cd", JobLogStore.KeepWithinCap(body, alreadyStored: 0, cap: 100));
        var cut = JobLogStore.KeepWithinCap(body, alreadyStored: 0, cap: 4); // would split the ✓
        Assert.StartsWith("ab\n[ephemeralci: log truncated", cut);
        Assert.Equal("", JobLogStore.KeepWithinCap(body, alreadyStored: 100, cap: 100));
    }
}
