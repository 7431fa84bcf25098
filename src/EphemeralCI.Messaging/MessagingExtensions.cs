using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Messaging;

public static class MessagingExtensions
{
    public const string RabbitMqConnectionName = "rabbitmq";

    /// <summary>
    /// MassTransit over RabbitMQ when <c>ConnectionStrings:rabbitmq</c> is set (amqp://user:pass@host:port/vhost),
    /// otherwise the in-memory transport for a single process.
    /// </summary>
    public static IHostApplicationBuilder AddEciMessaging(
        this IHostApplicationBuilder builder,
        Action<IBusRegistrationConfigurator> configureConsumers)
    {
        var connectionString = builder.Configuration.GetConnectionString(RabbitMqConnectionName);
        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            // MassTransit reports usage to its vendor over the internet by default; a security product never calls home.
            x.DisableUsageTelemetry();
            configureConsumers(x);
            if (string.IsNullOrWhiteSpace(connectionString))
            {
                x.UsingInMemory((context, cfg) =>
                {
                    cfg.UseMessageRetry(r => r.Exponential(5, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)));
                    cfg.ConfigureEndpoints(context);
                });
            }
            else
            {
                var uri = new Uri(connectionString);
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(uri, h =>
                    {
                        var userInfo = uri.UserInfo.Split(':', 2);
                        if (userInfo.Length == 2)
                        {
                            h.Username(Uri.UnescapeDataString(userInfo[0]));
                            h.Password(Uri.UnescapeDataString(userInfo[1]));
                        }
                    });
                    cfg.UseMessageRetry(r => r.Exponential(5, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)));
                    cfg.ConfigureEndpoints(context);
                });
            }
        });
        // After MassTransit's hosted service, which starts the bus without waiting for it.
        builder.Services.AddHostedService<BusStartWait>();
        return builder;
    }

    /// <summary>Runs the outbox dispatcher for <typeparamref name="TContext"/>.</summary>
    public static IHostApplicationBuilder AddOutboxDispatcher<TContext>(this IHostApplicationBuilder builder)
        where TContext : DbContext, IOutboxDbContext
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<OutboxSignal<TContext>>();
        // Every commit that staged messages wakes this dispatcher (no call site signals by hand).
        builder.Services.TryAddSingleton<OutboxCommitInterceptor<TContext>>();
        builder.Services.ConfigureDbContext<TContext>((sp, options) => options.AddInterceptors(sp.GetRequiredService<OutboxCommitInterceptor<TContext>>()));
        builder.Services.AddOptions<OutboxOptions>().BindConfiguration(OutboxOptions.Section);
        builder.Services.AddSingleton<OutboxDispatcher<TContext>>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OutboxDispatcher<TContext>>());
        return builder;
    }
}
