using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Provisioner.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerAttempt : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "Attempt",
                table: "runners",
                type: "integer",
                nullable: false,
                defaultValue: 1); // every runner from before retries ran its job's first attempt
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Attempt",
                table: "runners");
        }
    }
}
