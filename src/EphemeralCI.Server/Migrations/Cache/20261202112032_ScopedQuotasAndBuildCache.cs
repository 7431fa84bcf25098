using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Cache
{
    /// <inheritdoc />
    public partial class ScopedQuotasAndBuildCache : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_cache_entries_repository_scope_last_accessed_at",
                table: "cache_entries",
                columns: new[] { "repository", "scope", "last_accessed_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_cache_entries_repository_scope_last_accessed_at",
                table: "cache_entries");
        }
    }
}
