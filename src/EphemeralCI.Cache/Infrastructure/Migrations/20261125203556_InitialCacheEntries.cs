using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace EphemeralCI.Cache.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class InitialCacheEntries : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cache_entries",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    repository = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    scope = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    key = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    version = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    state = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    size_bytes = table.Column<long>(type: "bigint", nullable: false),
                    sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    object_key = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    reserved_by_job_id = table.Column<Guid>(type: "uuid", nullable: false),
                    created_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    committed_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    last_accessed_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
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
