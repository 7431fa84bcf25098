using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Intake.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerTemplateHash : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "runner_template_hash",
                table: "jobs",
                type: "character varying(80)",
                maxLength: 80,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "runner_template_hash",
                table: "jobs");
        }
    }
}
