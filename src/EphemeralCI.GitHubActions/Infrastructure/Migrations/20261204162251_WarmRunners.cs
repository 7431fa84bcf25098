using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.GitHubActions.Infrastructure.Migrations
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
                    name = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    template = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    scope = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    slot = table.Column<int>(type: "integer", nullable: false),
                    installation_id = table.Column<long>(type: "bigint", nullable: false),
                    state = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    runner_id = table.Column<long>(type: "bigint", nullable: true),
                    eci_job_id = table.Column<Guid>(type: "uuid", nullable: true),
                    workflow_job_id = table.Column<long>(type: "bigint", nullable: true),
                    reason = table.Column<string>(type: "character varying(500)", maxLength: 500, nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    idle_since = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    version = table.Column<int>(type: "integer", nullable: false)
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
