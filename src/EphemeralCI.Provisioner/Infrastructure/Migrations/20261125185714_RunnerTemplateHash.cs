using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Provisioner.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class RunnerTemplateHash : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TemplateHash",
                table: "runners",
                type: "character varying(80)",
                maxLength: 80,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TemplateHash",
                table: "runners");
        }
    }
}
