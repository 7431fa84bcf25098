using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Intake.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class JobIdentityBindings : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Keys that exist now get no bindings: admin keys keep working, every other key is refused
            // with a message saying it must be replaced (never silently bound to every repository).
            migrationBuilder.AddColumn<string>(
                name: "environment",
                table: "jobs",
                type: "character varying(63)",
                maxLength: 63,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "submitted_by",
                table: "jobs",
                type: "character varying(300)",
                maxLength: 300,
                nullable: true);

            migrationBuilder.AddColumn<List<string>>(
                name: "environments",
                table: "api_keys",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]");

            migrationBuilder.AddColumn<List<string>>(
                name: "refs",
                table: "api_keys",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]");

            migrationBuilder.AddColumn<List<string>>(
                name: "repositories",
                table: "api_keys",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]");

            migrationBuilder.AddColumn<List<string>>(
                name: "templates",
                table: "api_keys",
                type: "text[]",
                nullable: false,
                defaultValueSql: "'{}'::text[]");
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
