using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Provisioner.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerCommitSha : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "CommitSha",
                table: "runners",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "CommitSha",
                table: "runners");
        }
    }
}
