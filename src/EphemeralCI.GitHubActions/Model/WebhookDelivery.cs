namespace EphemeralCI.GitHubActions.Model;

/// <summary>A webhook delivery already handled: GitHub redelivers with the same <c>X-GitHub-Delivery</c> id.</summary>
public sealed class WebhookDelivery
{
    public required string Id { get; init; }
    public required string Event { get; init; }
    public DateTimeOffset ReceivedAt { get; init; }
}
