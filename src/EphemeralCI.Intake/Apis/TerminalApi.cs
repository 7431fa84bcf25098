using System.Security.Claims;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using EphemeralCI.JobTokens;
using EphemeralCI.Intake.Terminals;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Apis;

/// <summary>
/// The two WebSockets of an interactive session (<c>eci shell</c>): eci's at <c>/api/v1/sessions/{id}/terminal</c>, the agent's at
/// <see cref="RunnerApiRoutes.Terminal"/>, joined by <see cref="TerminalBridge"/>. Who may attach is decided exactly as who may send
/// a session command: a credential that could itself open this very session; the agent's end is its job token and bound key.
/// </summary>
public static class TerminalApi
{
    public static async Task<IResult> AttachClient(Guid id, [FromQuery] string? cols, [FromQuery] string? rows, HttpContext context,
        ClaimsPrincipal user, IntakeDbContext db, ITerminalBus bus, IJobLiveNotifier notifier)
    {
        var ct = context.RequestAborted;
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        var spec = job?.ParsedSpec();
        // Another repository's session, a job, and a session this credential could not have opened all answer 404.
        if (job is null || spec!.Session is null || !user.JobAccess().MaySee(job.Repository) || user.JobAccess().CheckSubmission(spec) is not null)
            return Problems.NotFound("Session not found", $"There is no session {id}.");
        if (spec.Session.Interactive != true)
            return Problems.Conflict("Not an interactive session", "This session takes commands (POST …/commands); open one with session.interactive for a terminal.");
        if (job.Status.IsTerminal())
            return Problems.Conflict("The session has ended", $"The session is {JobStatusNames.ToName(job.Status)} ({job.StatusReason}); open a new one.");
        var size = new Dictionary<string, string[]>();
        if (!int.TryParse(cols ?? "80", out var c) || !TerminalMessages.ValidSize(c, 1)) size["cols"] = [$"must be 1 to {TerminalMessages.MaxDimension}"];
        if (!int.TryParse(rows ?? "24", out var r) || !TerminalMessages.ValidSize(1, r)) size["rows"] = [$"must be 1 to {TerminalMessages.MaxDimension}"];
        if (size.Count > 0) return TypedResults.ValidationProblem(size);
        if (!context.WebSockets.IsWebSocketRequest)
            return Problems.BadRequest("A WebSocket is expected", "Open the terminal with a WebSocket upgrade (eci shell does).");

        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        await using var wakeup = await notifier.SubscribeAsync(id);
        await TerminalBridge.RunClientAsync(socket, id, c, r, bus,
            async token =>
            {
                var state = await db.Jobs.AsNoTracking().Where(j => j.Id == id).Select(j => new { j.Status, j.ExitCode, j.StatusReason }).FirstOrDefaultAsync(token);
                return state is null || state.Status.IsTerminal()
                    ? new TerminalControl(TerminalMessages.End, Code: state?.ExitCode, Status: state is null ? "gone" : JobStatusNames.ToName(state.Status), Reason: state?.StatusReason)
                    : null;
            },
            token => wakeup.WaitAsync(JobLogFollower.PollInterval * 5, token),
            ct);
        return Results.Empty;
    }

    public static async Task<IResult> AttachAgent(HttpContext context, ClaimsPrincipal runner, IntakeDbContext db, ITerminalBus bus)
    {
        var ct = context.RequestAborted;
        var jobId = runner.JobId()!.Value;
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null) return Problems.JobNotFound(jobId);
        if (job.Status.IsTerminal()) return RunnerApi.Finished(job);
        if (job.Attempt != runner.JobAttempt()) return RunnerApi.AttemptOver(job);
        if (job.ParsedSpec().Session?.Interactive != true) return Problems.Conflict("Not an interactive session", "Only an interactive session has a terminal.");
        if (!context.WebSockets.IsWebSocketRequest)
            return Problems.BadRequest("A WebSocket is expected", "The terminal is a WebSocket upgrade.");
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        await TerminalBridge.RunAgentAsync(socket, jobId, bus, ct);
        return Results.Empty;
    }
}
