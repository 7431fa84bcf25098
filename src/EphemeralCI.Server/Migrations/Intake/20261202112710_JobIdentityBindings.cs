using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Intake
{
    /// <inheritdoc />
    public partial class JobIdentityBindings : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "environment",
                table: "jobs",
                type: "TEXT",
                maxLength: 63,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "submitted_by",
                table: "jobs",
                type: "TEXT",
                maxLength: 300,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "environments",
                table: "api_keys",
                type: "TEXT",
                nullable: false,
                defaultValue: "[]");

            migrationBuilder.AddColumn<string>(
                name: "refs",
                table: "api_keys",
                type: "TEXT",
                nullable: false,
                defaultValue: "[]");

            migrationBuilder.AddColumn<string>(
                name: "repositories",
                table: "api_keys",
                type: "TEXT",
                nullable: false,
                defaultValue: "[]");

            migrationBuilder.AddColumn<string>(
                name: "templates",
                table: "api_keys",
                type: "TEXT",
                nullable: false,
                defaultValue: "[]");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "environment",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "submitted_by",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "environments",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "refs",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "repositories",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "templates",
                table: "api_keys");
        }
    }
}
