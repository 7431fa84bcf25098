using EphemeralCI.Cli.Hosting;

// Thin on purpose: EciApp builds the command tree so tests can run it in-process with their own console and HTTP handler.
return await EciApp.RunAsync(args, EciContext.ForProcess());
