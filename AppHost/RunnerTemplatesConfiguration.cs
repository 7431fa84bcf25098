using Aspire.Hosting.ApplicationModel;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerTemplates;

namespace EphemeralCI.AppHost;

/// <summary>
/// Gives a service the runner templates of a directory the platform team keeps in git. When the
/// AppHost runs, the service reads the directory itself (<c>RunnerTemplates:Directory</c>). When it
/// is published (azd), that path would be the build machine's and exist in no container, so each
/// template file's text goes into the service's configuration instead
/// (<c>RunnerTemplates:Files:&lt;name&gt;</c>, hashed as the file), validated now by the same loader
/// the services use, so a bad template fails the publish.
/// </summary>
public static class RunnerTemplatesConfiguration
{
    public static IResourceBuilder<ProjectResource> WithRunnerTemplates(
        this IResourceBuilder<ProjectResource> project, IDistributedApplicationBuilder builder, string directory)
    {
        if (!builder.ExecutionContext.IsPublishMode)
        {
            return project.WithEnvironment("RunnerTemplates__Directory", directory);
        }
        foreach (var (name, value) in AsSettings(directory))
        {
            project.WithEnvironment(name, value);
        }
        return project;
    }

    /// <summary>The templates of a directory as settings, e.g. <c>RunnerTemplates__Files__dotnet</c> = the file's text.</summary>
    public static IEnumerable<(string Name, string Value)> AsSettings(string directory)
    {
        foreach (var template in RunnerTemplateLoader.LoadDirectory(directory))
        {
            var text = RunnerTemplateLoader.Canonical(File.ReadAllText(template.Source));
            yield return ($"{RunnerTemplateDefinition.Section}__{RunnerTemplateLoader.FilesKey}__{template.Name}", text);
        }
    }
}
