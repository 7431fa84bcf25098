using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Cache
{
    /// <inheritdoc />
    public partial class InitialCreate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cache_entries",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    repository = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    scope = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    key = table.Column<string>(type: "TEXT", maxLength: 512, nullable: false),
                    version = table.Column<string>(type: "TEXT", maxLength: 512, nullable: false),
                    state = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    size_bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    sha256 = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    object_key = table.Column<string>(type: "TEXT", maxLength: 200, nullable: true),
                    reserved_by_job_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    committed_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    last_accessed_at = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_cache_entries", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_cache_entries_repository_last_accessed_at",
                table: "cache_entries",
                columns: new[] { "repository", "last_accessed_at" });

            migrationBuilder.CreateIndex(
                name: "ix_cache_entries_repository_scope_key_version",
                table: "cache_entries",
                columns: new[] { "repository", "scope", "key", "version" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_cache_entries_repository_scope_version_state",
                table: "cache_entries",
                columns: new[] { "repository", "scope", "version", "state" });

            migrationBuilder.CreateIndex(
                name: "ix_cache_entries_state_created_at",
                table: "cache_entries",
                columns: new[] { "state", "created_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "cache_entries");
        }
    }
}
