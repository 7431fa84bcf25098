using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.SecretsBroker.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AuditAttempts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "attempt",
                table: "audit_entries",
                type: "integer",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ux_audit_entries_token_revoked",
                table: "audit_entries",
                columns: new[] { "job_id", "attempt" },
                unique: true,
                filter: "action = 'token.revoked'");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ux_audit_entries_token_revoked",
                table: "audit_entries");

            migrationBuilder.DropColumn(
                name: "attempt",
                table: "audit_entries");
        }
    }
}
