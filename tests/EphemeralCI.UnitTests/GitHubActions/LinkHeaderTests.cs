using EphemeralCI.GitHubActions.GitHub;
using Xunit;

namespace EphemeralCI.UnitTests.GitHubActions;

public sealed class LinkHeaderTests
{
    private static readonly Uri Request = new("https://api.github.com/repos/acme/widgets/actions/runners?per_page=100&page=2");

    [Fact]
    public void GitHubs_form_gives_the_next_target_whatever_the_order_of_rels()
    {
        const string header = "<https://api.github.com/repositories/1/actions/runners?per_page=100&page=1>; rel=\"prev\", "
            + "<https://api.github.com/repositories/1/actions/runners?per_page=100&page=3>; rel=\"next\", "
            + "<https://api.github.com/repositories/1/actions/runners?per_page=100&page=5>; rel=\"last\"";
        Assert.Equal(new Uri("https://api.github.com/repositories/1/actions/runners?per_page=100&page=3"), LinkHeader.Next([header], Request));
    }

    [Theory]
    [InlineData("<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=1>; rel=\"first\"")]
    [InlineData("")]
    [InlineData("https://api.github.com/x?page=3; rel=\"next\"")]
    [InlineData("<https://api.github.com/x?page=3; rel=\"next\"")]
    [InlineData("<https://api.github.com/x?page=3>; rel=\"nextish\"")]
    public void No_next_or_a_malformed_header_gives_none(string header) => Assert.Null(LinkHeader.Next([header], Request));

    [Fact]
    public void A_relative_target_and_unquoted_or_multiple_rels_are_understood()
    {
        Assert.Equal(new Uri("https://api.github.com/repos/acme/widgets/actions/runners?page=3"),
            LinkHeader.Next(["</repos/acme/widgets/actions/runners?page=3>; REL=next"], Request));
        Assert.Equal(new Uri("https://api.github.com/x?page=3"),
            LinkHeader.Next(["<https://api.github.com/x?page=5>; rel=\"last\"", "<https://api.github.com/x?page=3>; title=\"n\"; rel=\"last next\""], Request));
    }
}
