using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Interactive sessions (eci shell) on the all-in-one server with real sandboxes: a real pseudo-terminal in the runner, reached
/// through the intake's terminal WebSocket — echo, window size, Ctrl+C, exit code — and the runner destroyed afterwards.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ShellTests(ServerFixture fx)
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    [Fact]
    public async Task Terminal_echoes_resizes_interrupts_and_ends_with_the_shells_exit_code()
    {
        var id = await OpenAsync();
        using var term = await Term.ConnectAsync(fx, id, 100, 30);

        await term.TypeAsync("echo $((6*7))\r");
        try { await term.WaitForAsync("42\r\n"); }
        catch (Exception e)
        {
            var output = fx.Output;
            throw new Xunit.Sdk.XunitException($"{e.Message}\njob log:\n{await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs")}\nserver:\n{output[Math.Max(0, output.Length - 4000)..]}");
        }

        await term.ResizeAsync(123, 45);
        await term.TypeAsync("stty size\r");
        await term.WaitForAsync("45 123");

        // The child says when it runs: by then bash has made it the terminal's foreground group, so Ctrl+C is for it (not for bash
        // between fork and exec, which a fixed wait only made unlikely).
        await term.TypeAsync("bash -c 'echo running-$((2*4)); exec sleep 100'; echo after-sleep-$?\r");
        await term.WaitForAsync("running-8");
        await term.TypeAsync("\u0003");
        await term.TypeAsync("echo interrupted-$((1+1))\r");
        await term.WaitForAsync("interrupted-2");
        Assert.DoesNotContain("after-sleep-0", term.Output);

        await term.TypeAsync("exit 3\r");
        try { Assert.Equal(3, await term.ExitCodeAsync()); }
        catch (TimeoutException)
        {
            var output = fx.Output;
            var job = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}");
            throw new Xunit.Sdk.XunitException($"no exit: terminal:\n{term.Output}\njob: {job}\njob log:\n{await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs")}\nserver:\n{output[Math.Max(0, output.Length - 6000)..]}");
        }

        var ended = await fx.Intake.WaitForTerminalAsync(id);
        Assert.Equal("failed", ended.GetProperty("status").GetString());
        Assert.Equal(3, ended.GetProperty("exitCode").GetInt32());
        await fx.WaitForVerifiedRunnerEndAsync(id);
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);

        // The record stays: what the terminal showed is in the job's log.
        var log = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.Contains("interrupted-2", log);

        // An ended session's terminal is refused.
        using var after = new ClientWebSocket();
        after.Options.SetRequestHeader("Authorization", fx.Intake.DefaultRequestHeaders.Authorization!.ToString());
        after.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => after.ConnectAsync(Term.UriFor(fx, id, 80, 24), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Conflict, after.HttpStatusCode);
    }

    [Fact]
    public async Task Another_repositorys_key_gets_404_and_commands_are_refused()
    {
        var id = await OpenAsync();
        try
        {
            using var created = await fx.Intake.PostAsJsonAsync("/api/v1/api-keys", new
            {
                name = "e2e-shell-" + Guid.NewGuid().ToString("N")[..6], scopes = new[] { "submit", "read" }, repositories = new[] { "acme/other" }, refs = new[] { "refs/heads/**" },
            });
            var key = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString();
            using var other = new ClientWebSocket();
            other.Options.SetRequestHeader("Authorization", "Bearer " + key);
            other.Options.CollectHttpResponseDetails = true;
            await Assert.ThrowsAsync<WebSocketException>(() => other.ConnectAsync(Term.UriFor(fx, id, 80, 24), CancellationToken.None));
            Assert.Equal(HttpStatusCode.NotFound, other.HttpStatusCode);

            using var command = await fx.Intake.PostAsJsonAsync($"/api/v1/sessions/{id}/commands", new { run = "echo hi" });
            Assert.Equal(HttpStatusCode.Conflict, command.StatusCode);
        }
        finally
        {
            await fx.Intake.DeleteAsync($"/api/v1/sessions/{id}");
        }
    }

    [Fact]
    public async Task Bad_input_closes_the_terminal_with_a_close_frame_that_says_why()
    {
        var id = await OpenAsync();
        try
        {
            // More keystrokes than are held before the runner's shell is ready (sent at once, while its runner still starts);
            // anything but a resize; a control message over the size limit. Each on a connection of its own to one session.
            await AssertRefusedAsync(id, new byte[64 * 1024 + 1] /* TerminalBridge.MaxHeldInputBytes + 1 */, WebSocketCloseStatus.MessageTooBig, "too much input before the runner's shell was ready", WebSocketMessageType.Binary);
            await AssertRefusedAsync(id, Encoding.UTF8.GetBytes("{\"type\":\"exit\",\"code\":0}"), WebSocketCloseStatus.PolicyViolation, "only binary input and valid resize messages");
            await AssertRefusedAsync(id, Encoding.UTF8.GetBytes("{\"type\":\"resize\",\"pad\":\"" + new string('x', 20_000) + "\"}"), WebSocketCloseStatus.MessageTooBig, "control message too long");
        }
        finally
        {
            await fx.Intake.DeleteAsync($"/api/v1/sessions/{id}");
        }
    }

    /// <summary>
    /// Sends <paramref name="bad"/> and goes on typing, as a person at a terminal would (so the server has unread input when it
    /// closes): the close frame with its reason must arrive all the same, not a reset.
    /// </summary>
    private async Task AssertRefusedAsync(Guid id, byte[] bad, WebSocketCloseStatus status, string reason, WebSocketMessageType type = WebSocketMessageType.Text)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", fx.Intake.DefaultRequestHeaders.Authorization!.ToString());
        await socket.ConnectAsync(Term.UriFor(fx, id, 80, 24), CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await socket.SendAsync(bad, type, true, timeout.Token);
        var typing = true;
        var keys = Task.Run(async () =>
        {
            // Not cancelled by a token: a cancelled send aborts the socket, and the close could not be answered.
            try { while (Volatile.Read(ref typing)) await socket.SendAsync("ls\r"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None); }
            catch (Exception) { /* the server's end went away under the typing */ }
        });
        var buffer = new byte[64 * 1024];
        WebSocketReceiveResult result;
        try
        {
            do result = await socket.ReceiveAsync(buffer, timeout.Token);
            while (result.MessageType != WebSocketMessageType.Close);
        }
        catch (WebSocketException e)
        {
            throw new Xunit.Sdk.XunitException($"no close frame, the connection was dropped: {e.Message} ({socket.State})");
        }
        finally
        {
            Volatile.Write(ref typing, false);
            await keys;
        }
        Assert.Equal(status, result.CloseStatus);
        Assert.Equal(reason, result.CloseStatusDescription);
        // The server waits for the answer to its close (the handshake completes) rather than dropping the connection after it.
        try { await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "ok", timeout.Token); }
        catch (WebSocketException e) { throw new Xunit.Sdk.XunitException($"the server did not wait for the answer to its close: {e.Message}"); }
        Assert.Equal(WebSocketState.Closed, socket.State);
    }

    [Fact]
    public async Task Eci_shell_under_tmux_is_a_real_terminal()
    {
        if (!File.Exists("/usr/bin/tmux")) Assert.Fail("tmux is not installed (apt-get install -y tmux)");
        var socket = "eci-shell-" + Guid.NewGuid().ToString("N")[..8];
        var home = Directory.CreateTempSubdirectory("eci-shell-home-").FullName;
        var done = Path.Combine(home, "exit-code");
        var eci = typeof(ShellTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EciDll").Value!;
        var command = $"ECI_SERVER={fx.BaseAddress} ECI_API_KEY={ServerFixture.AdminKey} ECI_CONFIG={home}/config.json NO_COLOR=1 " +
                      $"dotnet {eci} shell --repository acme/widgets --ref refs/heads/main --commit {Sha} --idle-timeout 60s; echo $? > {done}; sleep 30";
        try
        {
            await TmuxAsync(socket, "new-session", "-d", "-x", "90", "-y", "25", "sh", "-c", command);
            await PaneWaitAsync(socket, "workspace$", TimeSpan.FromSeconds(60));
            await TmuxAsync(socket, "send-keys", "echo tmux-$((6*7))", "Enter");
            await PaneWaitAsync(socket, "tmux-42", TimeSpan.FromSeconds(10));
            await TmuxAsync(socket, "resize-window", "-x", "101", "-y", "33");
            await Task.Delay(300);
            await TmuxAsync(socket, "send-keys", "stty size", "Enter");
            await PaneWaitAsync(socket, "33 101", TimeSpan.FromSeconds(10));
            await TmuxAsync(socket, "send-keys", "exit 5", "Enter");
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!File.Exists(done) || (await File.ReadAllTextAsync(done)).Trim().Length == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "eci shell did not exit: " + await TmuxAsync(socket, "capture-pane", "-p"));
                await Task.Delay(100);
            }
            Assert.Equal("5", (await File.ReadAllTextAsync(done)).Trim());
        }
        finally
        {
            await TmuxAsync(socket, "kill-server");
            Directory.Delete(home, recursive: true);
        }
    }

    private static async Task<string> TmuxAsync(string socket, params string[] args)
    {
        var start = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-L");
        start.ArgumentList.Add(socket);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output;
    }

    private static async Task PaneWaitAsync(string socket, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var pane = await TmuxAsync(socket, "capture-pane", "-p");
            if (pane.Contains(text)) return;
            Assert.True(DateTime.UtcNow < deadline, $"'{text}' never appeared in the pane:\n{pane}");
            await Task.Delay(100);
        }
    }

    private async Task<Guid> OpenAsync()
    {
        using var response = await fx.Intake.PostAsJsonAsync("/api/v1/sessions", new
        {
            repository = "acme/widgets", @ref = "refs/heads/main", commitSha = Sha, runnerTemplate = "default", timeoutSeconds = 300,
            session = new { interactive = true, idleTimeoutSeconds = 60 },
        });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"open answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }
}
