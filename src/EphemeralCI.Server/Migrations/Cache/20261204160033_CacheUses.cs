using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Cache
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
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    job_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    attempt = table.Column<int>(type: "INTEGER", nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 8, nullable: false),
                    protocol = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    key = table.Column<string>(type: "TEXT", maxLength: 512, nullable: false),
                    version = table.Column<string>(type: "TEXT", maxLength: 512, nullable: false),
                    hit = table.Column<bool>(type: "INTEGER", nullable: false),
                    matched_key = table.Column<string>(type: "TEXT", maxLength: 512, nullable: true),
                    entry_id = table.Column<long>(type: "INTEGER", nullable: true),
                    scope = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    sha256 = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    size_bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    at = table.Column<long>(type: "INTEGER", nullable: false)
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
