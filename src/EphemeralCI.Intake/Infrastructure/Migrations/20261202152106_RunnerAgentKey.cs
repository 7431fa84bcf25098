using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Intake.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerAgentKey : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "agent_key_hash",
                table: "jobs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "agent_key_hash",
                table: "jobs");
        }
    }
}
