using System.Globalization;
using System.Text.RegularExpressions;
using Aspire.Hosting.ApplicationModel;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerTemplates;

namespace EphemeralCI.AppHost;

/// <summary>
/// Gives a service the runner templates of a directory the platform team keeps in git. When the
/// AppHost runs, the service reads the directory itself (<c>RunnerTemplates:Directory</c>). When it
/// is published (azd), that path would be the build machine's and exist in no container, so each
/// template goes into the service's configuration instead (<c>RunnerTemplates:&lt;name&gt;:…</c>),
/// validated now by the same loader the services use, so a bad template fails the publish.
/// </summary>
public static partial class RunnerTemplatesConfiguration
{
    public static IResourceBuilder<ProjectResource> WithRunnerTemplates(
        this IResourceBuilder<ProjectResource> project, IDistributedApplicationBuilder builder, string directory)
    {
        if (!builder.ExecutionContext.IsPublishMode)
        {
            return project.WithEnvironment("RunnerTemplates__Directory", directory);
        }
        foreach (var (name, value) in AsSettings(RunnerTemplateLoader.LoadDirectory(directory)))
        {
            project.WithEnvironment(name, value);
        }
        return project;
    }

    /// <summary>The templates as environment settings, e.g. <c>RunnerTemplates__dotnet__Resources__MemoryMiB=4096</c>.</summary>
    public static IEnumerable<(string Name, string Value)> AsSettings(IEnumerable<LoadedTemplate> templates)
    {
        foreach (var template in templates)
        {
            var prefix = $"{RunnerTemplateDefinition.Section}__{template.Name}__";
            var d = template.Definition;
            yield return (prefix + nameof(d.Backend), d.Backend);
            yield return (prefix + nameof(d.DefaultTimeoutSeconds), Invariant(d.DefaultTimeoutSeconds));
            yield return (prefix + nameof(d.MaxTimeoutSeconds), Invariant(d.MaxTimeoutSeconds));
            if (d.Image is not null) yield return (prefix + nameof(d.Image), d.Image);
            if (d.RootFilesystem is not null) yield return (prefix + nameof(d.RootFilesystem), d.RootFilesystem);
            yield return (prefix + nameof(d.Network), d.Network);
            yield return (prefix + nameof(d.RunAsUser), Invariant(d.RunAsUser));
            yield return (prefix + "Resources__" + nameof(d.Resources.CpuMillis), Invariant(d.Resources.CpuMillis));
            yield return (prefix + "Resources__" + nameof(d.Resources.MemoryMiB), Invariant(d.Resources.MemoryMiB));
            yield return (prefix + "Resources__" + nameof(d.Resources.MaxProcesses), Invariant(d.Resources.MaxProcesses));
            foreach (var (key, value) in d.Labels)
            {
                // Container Apps accept only these characters in a variable's name.
                if (!EnvironmentName().IsMatch(key))
                {
                    throw new InvalidOperationException(
                        $"Runner template '{template.Name}' ({template.Source}) has label '{key}', which cannot be passed as an environment setting when publishing; use letters, digits, '-', '_' or '.'.");
                }
                yield return (prefix + "Labels__" + key, value);
            }
        }
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.-]*$")]
    private static partial Regex EnvironmentName();
}
