using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace EphemeralCI.Cache.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class CacheUses : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cache_uses",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    job_id = table.Column<Guid>(type: "uuid", nullable: false),
                    attempt = table.Column<int>(type: "integer", nullable: false),
                    kind = table.Column<string>(type: "character varying(8)", maxLength: 8, nullable: false),
                    protocol = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    key = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    version = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    hit = table.Column<bool>(type: "boolean", nullable: false),
                    matched_key = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: true),
                    entry_id = table.Column<long>(type: "bigint", nullable: true),
                    scope = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: true),
                    sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    size_bytes = table.Column<long>(type: "bigint", nullable: false),
                    at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_cache_uses", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_cache_uses_at",
                table: "cache_uses",
                column: "at");

            migrationBuilder.CreateIndex(
                name: "ix_cache_uses_job_id_attempt",
                table: "cache_uses",
                columns: new[] { "job_id", "attempt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "cache_uses");
        }
    }
}
