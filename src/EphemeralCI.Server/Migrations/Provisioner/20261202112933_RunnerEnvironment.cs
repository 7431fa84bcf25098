using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Provisioner
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
                type: "TEXT",
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
