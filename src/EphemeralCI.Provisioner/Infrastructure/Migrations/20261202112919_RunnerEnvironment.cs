using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Provisioner.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerEnvironment : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Environment",
                table: "runners",
                type: "character varying(63)",
                maxLength: 63,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Environment",
                table: "runners");
        }
    }
}
