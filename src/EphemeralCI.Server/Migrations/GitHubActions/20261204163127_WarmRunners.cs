using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.GitHubActions
{
    /// <inheritdoc />
    public partial class WarmRunners : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "warm_runners",
                columns: table => new
                {
                    name = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    template = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    scope = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    slot = table.Column<int>(type: "INTEGER", nullable: false),
                    installation_id = table.Column<long>(type: "INTEGER", nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    runner_id = table.Column<long>(type: "INTEGER", nullable: true),
                    eci_job_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    workflow_job_id = table.Column<long>(type: "INTEGER", nullable: true),
                    reason = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    idle_since = table.Column<long>(type: "INTEGER", nullable: true),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_warm_runners", x => x.name);
                });

            migrationBuilder.CreateIndex(
                name: "ix_warm_runners_state",
                table: "warm_runners",
                column: "state");

            migrationBuilder.CreateIndex(
                name: "ix_warm_runners_template_scope_slot",
                table: "warm_runners",
                columns: new[] { "template", "scope", "slot" },
                unique: true,
                filter: "\"state\" IN ('Launching', 'Idle')");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "warm_runners");
        }
    }
}
