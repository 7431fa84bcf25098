using EphemeralCI.Intake.WebUi;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class AnsiHtmlTests
{
    private const string E = "\u001b";

    [Fact]
    public void Plain_text_is_html_encoded_so_markup_in_a_log_stays_text()
    {
        Assert.Equal("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;\n",
            AnsiHtml.Render("<script>alert(\"x\")</script> & 'q'\n"));
    }

    [Fact]
    public void Sgr_colours_and_weights_become_spans_with_classes()
    {
        Assert.Equal("<span class=\"ansi-fg1\">red</span> plain <span class=\"ansi-bold ansi-fg10\">bright green</span>",
            AnsiHtml.Render($"{E}[31mred{E}[0m plain {E}[1;92mbright green{E}[m"));
    }

    [Fact]
    public void Background_256_colour_palette_and_resets_are_understood()
    {
        Assert.Equal("<span class=\"ansi-fg3 ansi-bg4\">a</span><span class=\"ansi-bg4\">b</span>c",
            AnsiHtml.Render($"{E}[38;5;3;44ma{E}[39mb{E}[49mc"));
        // True colour and the upper 256 colours are left at the default colour, and their numbers are not read as other codes.
        Assert.Equal("x", AnsiHtml.Render($"{E}[38;2;1;31;4mx"));
        Assert.Equal("y", AnsiHtml.Render($"{E}[38;5;200my"));
    }

    [Fact]
    public void Every_other_control_sequence_is_dropped_and_its_text_kept()
    {
        var hostile = $"{E}[2J{E}[H{E}]0;evil title{'\u0007'}{E}]8;;javascript:alert(1){E}\\click{E}]8;;{E}\\{E}Pdcs{E}\\{E}7{E}(Bok\u0000\u0007\b\u009b";
        Assert.Equal("clickok", AnsiHtml.Render(hostile));
    }

    [Fact]
    public void Carriage_returns_end_lines_instead_of_overwriting()
    {
        Assert.Equal("10%\n50%\ndone\n", AnsiHtml.Render("10%\r50%\rdone\r\n"));
    }

    [Fact]
    public void A_sequence_cut_between_chunks_is_completed_by_the_next_and_the_style_carries_over()
    {
        var ansi = new AnsiHtml();
        var first = ansi.Append($"before {E}[3");
        var second = ansi.Append($"2mgreen\nstill ");
        var third = ansi.Append($"green{E}[0m after");
        Assert.Equal("before ", first);
        Assert.Equal("<span class=\"ansi-fg2\">green\nstill </span>", second);
        Assert.Equal("<span class=\"ansi-fg2\">green</span> after", third);
        // The same text as the whole log rendered at once (the spans are only split where the chunks were).
        static string Text(string html) => System.Text.RegularExpressions.Regex.Replace(html, "<[^>]+>", "");
        Assert.Equal(Text(AnsiHtml.Render($"before {E}[32mgreen\nstill green{E}[0m after")), Text(first + second + third));
    }

    [Fact]
    public void An_endless_escape_sequence_is_dropped_instead_of_held_forever()
    {
        var ansi = new AnsiHtml();
        Assert.Equal("", ansi.Append($"{E}]" + new string('x', 1000)));
        Assert.Equal("next", ansi.Append("next"));
    }

    [Fact]
    public void A_malformed_csi_sequence_does_not_swallow_the_text_after_it()
    {
        Assert.Equal("\n&lt;b&gt;", AnsiHtml.Render($"{E}[\n<b>"));
    }

    [Fact]
    public void The_agents_step_headers_become_anchors_once_per_step_even_when_cut_between_chunks()
    {
        const char M = '\u001e';
        var ansi = new AnsiHtml();
        var html = ansi.Append($"{M}==> step 1/2: build\nok\n{M}==> st") + ansi.Append($"ep 2/2: test\nbad\n{M}==> step 2/2: test failed with exit code 3\n");
        Assert.Equal(
            "<span class=\"step-mark\" id=\"step-1\"></span>==&gt; step 1/2: build\nok\n<span class=\"step-mark\" id=\"step-2\"></span>==&gt; step 2/2: test\nbad\n==&gt; step 2/2: test failed with exit code 3\n",
            html);
        // Other agent lines are text; a step cannot print the marker, and a header without it is no anchor.
        Assert.Equal("==&gt; secrets: A (masked in this log)\n==&gt; step 9/9: forged\n", AnsiHtml.Render($"{M}==> secrets: A (masked in this log)\n==> step 9/9: forged\n"));
    }
}
