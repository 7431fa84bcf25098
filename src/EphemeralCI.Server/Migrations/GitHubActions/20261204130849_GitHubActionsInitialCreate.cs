using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.GitHubActions
{
    /// <inheritdoc />
    public partial class GitHubActionsInitialCreate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "webhook_deliveries",
                columns: table => new
                {
                    id = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    @event = table.Column<string>(name: "event", type: "TEXT", maxLength: 50, nullable: false),
                    received_at = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_webhook_deliveries", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "workflow_jobs",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false),
                    repository = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    run_id = table.Column<long>(type: "INTEGER", nullable: false),
                    installation_id = table.Column<long>(type: "INTEGER", nullable: false),
                    @ref = table.Column<string>(name: "ref", type: "TEXT", maxLength: 300, nullable: false),
                    commit_sha = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    labels = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    template = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    state = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    git_hub_status = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    runner_name = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    assigned_runner = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    runner_id = table.Column<long>(type: "INTEGER", nullable: true),
                    eci_job_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    reason = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_workflow_jobs", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_workflow_jobs_state",
                table: "workflow_jobs",
                column: "state");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "webhook_deliveries");

            migrationBuilder.DropTable(
                name: "workflow_jobs");
        }
    }
}
