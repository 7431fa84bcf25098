using Xunit;
using EphemeralCI.SecretsBroker.Infrastructure;

namespace EphemeralCI.UnitTests.SecretsBroker;

public class RedisTokenReplayGuardTests
{
    private static readonly DateTimeOffset Now = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Mark_outlives_the_token_by_the_validators_clock_skew() =>
        Assert.Equal(TimeSpan.FromMinutes(10) + RedisTokenReplayGuard.ClockSkew,
            RedisTokenReplayGuard.MarkLifetime(Now.AddMinutes(10), Now));

    [Fact]
    public void Token_expiring_within_the_skew_still_gets_a_mark_for_the_rest_of_it() =>
        Assert.Equal(TimeSpan.FromSeconds(3), RedisTokenReplayGuard.MarkLifetime(Now.AddSeconds(-2), Now));

    [Fact]
    public void Mark_is_never_shorter_than_one_second() =>
        Assert.Equal(TimeSpan.FromSeconds(1), RedisTokenReplayGuard.MarkLifetime(Now.AddMinutes(-5), Now));
}
