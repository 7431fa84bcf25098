using EphemeralCI.Cli.Output;
using EphemeralCI.Contracts.Runner;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

/// <summary>Issue 14 item 9: what a job prints cannot drive the terminal of whoever follows its log with eci.</summary>
public sealed class JobLogWriterTests
{
    private const string Esc = "\u001b";

    [Theory]
    [InlineData(Esc + "[2J" + Esc + "[H", "")]                       // clear the screen, cursor home
    [InlineData(Esc + "[1A" + Esc + "[2Kdeployed", "deployed")]        // up one line, erase it, write over it
    [InlineData(Esc + "]0;root@prod: ~\u0007ok", "ok")]                // window title (OSC … BEL)
    [InlineData(Esc + "]8;;http://evil/\u001b\\click" + Esc + "]8;;\u001b\\", "click")] // hyperlink (OSC … ST)
    [InlineData(Esc + "P+q544e\u001b\\x", "x")]                        // DCS (terminal queries)
    [InlineData(Esc + "7" + Esc + "8" + Esc + "c" + Esc + "(Bz", "z")] // save/restore cursor, reset, charset
    [InlineData(Esc + "[?25l" + Esc + "[?1049h", "")]                  // hide the cursor, alternate screen
    [InlineData("\u009b2J8-bit", "\ufffd2J8-bit")]                     // 8-bit CSI is shown, not obeyed
    [InlineData("secret\b\b\b\b\b\bpublic", "secret␈␈␈␈␈␈public")]     // backspaces cannot erase text
    [InlineData("FAILED\rPASSED", "FAILED\nPASSED")]                   // a lone CR cannot overwrite the line
    [InlineData("crlf\r\nline", "crlf\nline")]
    [InlineData("bell\u0007", "bell␇")]
    [InlineData(Esc + "[8mhidden" + Esc + "[0m", "hidden" + Esc + "[0m")] // conceal is not a colour
    public void Control_sequences_other_than_colours_are_removed_or_shown(string printed, string shown) =>
        Assert.Equal(shown, JobLogWriter.Sanitize(printed));

    [Theory]
    [InlineData(Esc + "[31merror" + Esc + "[0m")]
    [InlineData(Esc + "[1;32mok" + Esc + "[m")]
    [InlineData(Esc + "[38;5;208morange" + Esc + "[39m")]
    [InlineData(Esc + "[38;2;255;0;8mrgb" + Esc + "[0m")] // 8 as a colour component is not conceal
    public void Colours_are_kept(string printed) => Assert.Equal(printed, JobLogWriter.Sanitize(printed));

    [Fact]
    public void A_sequence_split_across_chunks_is_still_recognised()
    {
        using var output = new StringWriter();
        var writer = new JobLogWriter(output, styled: false);

        writer.Write("before" + Esc + "[");
        writer.Write("2");
        writer.Write("Jafter" + Esc + "]0;ti");
        writer.Write("tle\u0007end\r");
        writer.Write("\nnext");
        writer.Complete();

        Assert.Equal("beforeafterend\nnext", output.ToString());
    }

    [Fact]
    public void An_unterminated_string_sequence_cannot_swallow_the_rest_of_the_log() =>
        Assert.Equal("\nstill visible\n", JobLogWriter.Sanitize(Esc + "]0;never ends\nstill visible\n"));

    [Fact]
    public void The_agents_marked_lines_are_shown_distinctly_and_a_steps_imitation_is_not()
    {
        var log = $"{AgentLogLines.Marker}==> step 1/1: build\n==> step 2/1: deploy (printed by the step)\npartial{AgentLogLines.Marker}==> cache save 'k': saved\n";

        var styled = JobLogWriter.Sanitize(log, styled: true);
        var plain = JobLogWriter.Sanitize(log);

        Assert.Equal("\u001b[0m\u001b[1;36m==> step 1/1: build\u001b[0m\n==> step 2/1: deploy (printed by the step)\npartial\n\u001b[0m\u001b[1;36m==> cache save 'k': saved\u001b[0m\n", styled);
        Assert.Equal("==> step 1/1: build\n==> step 2/1: deploy (printed by the step)\npartial\n==> cache save 'k': saved\n", plain);
    }

    [Fact]
    public void The_agent_replaces_the_marker_in_step_output()
    {
        var stepOutput = System.Text.Encoding.UTF8.GetBytes("\u001e==> step 9/9: fake\n");

        var neutralized = System.Text.Encoding.UTF8.GetString(AgentLogLines.NeutralizeStepOutput(stepOutput).Span);

        Assert.Equal("\u241e==> step 9/9: fake\n", neutralized);
        Assert.DoesNotContain(AgentLogLines.Marker, neutralized);
        Assert.Equal("\u241e==> step 9/9: fake\n", JobLogWriter.Sanitize(neutralized, styled: true)); // not styled as the agent's
    }

    [Fact]
    public void Timeline_text_loses_every_control_character() =>
        Assert.Equal("build ␇ now", JobLogWriter.Plain("build" + Esc + "]0;x\u0007\n\u0007 now"));
}
