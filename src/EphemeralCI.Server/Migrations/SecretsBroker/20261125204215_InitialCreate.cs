using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.SecretsBroker
{
    /// <inheritdoc />
    public partial class InitialCreate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "audit_entries",
                columns: table => new
                {
                    id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    at = table.Column<long>(type: "INTEGER", nullable: false),
                    actor = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    action = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    secret_name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    job_id = table.Column<Guid>(type: "TEXT", nullable: true),
                    repository = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    @ref = table.Column<string>(name: "ref", type: "TEXT", maxLength: 256, nullable: true),
                    token_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    detail = table.Column<string>(type: "TEXT", maxLength: 2048, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_audit_entries", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "secrets",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    repository_patterns = table.Column<string>(type: "TEXT", nullable: false),
                    ref_patterns = table.Column<string>(type: "TEXT", nullable: false),
                    environment = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    current_version = table.Column<int>(type: "INTEGER", nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_at = table.Column<long>(type: "INTEGER", nullable: false),
                    updated_by = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_secrets", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "signing_keys",
                columns: table => new
                {
                    kid = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    public_jwk = table.Column<string>(type: "TEXT", nullable: false),
                    private_key_ciphertext = table.Column<byte[]>(type: "BLOB", nullable: false),
                    wrapped_data_key = table.Column<byte[]>(type: "BLOB", nullable: false),
                    key_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    signs_until = table.Column<long>(type: "INTEGER", nullable: false),
                    published_until = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_signing_keys", x => x.kid);
                });

            migrationBuilder.CreateTable(
                name: "secret_versions",
                columns: table => new
                {
                    secret_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    version = table.Column<int>(type: "INTEGER", nullable: false),
                    ciphertext = table.Column<byte[]>(type: "BLOB", nullable: false),
                    wrapped_data_key = table.Column<byte[]>(type: "BLOB", nullable: false),
                    key_id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    created_at = table.Column<long>(type: "INTEGER", nullable: false),
                    created_by = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_secret_versions", x => new { x.secret_id, x.version });
                    table.ForeignKey(
                        name: "fk_secret_versions_secrets_secret_id",
                        column: x => x.secret_id,
                        principalTable: "secrets",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_audit_entries_at",
                table: "audit_entries",
                column: "at");

            migrationBuilder.CreateIndex(
                name: "ix_audit_entries_job_id",
                table: "audit_entries",
                column: "job_id");

            migrationBuilder.CreateIndex(
                name: "ix_audit_entries_secret_name",
                table: "audit_entries",
                column: "secret_name");

            migrationBuilder.CreateIndex(
                name: "ix_secret_versions_key_id",
                table: "secret_versions",
                column: "key_id");

            migrationBuilder.CreateIndex(
                name: "ix_secrets_name",
                table: "secrets",
                column: "name",
                unique: true);

            // The audit is append-only, as on Postgres (a trigger there too): SQLite has no TRUNCATE,
            // and a DELETE without WHERE is a DELETE, so two triggers cover every way to change it.
            migrationBuilder.Sql("""
                CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
                BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only (UPDATE refused)'); END;
                """);
            migrationBuilder.Sql("""
                CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
                BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only (DELETE refused)'); END;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TRIGGER IF EXISTS audit_entries_no_update; DROP TRIGGER IF EXISTS audit_entries_no_delete;");
            migrationBuilder.DropTable(
                name: "audit_entries");

            migrationBuilder.DropTable(
                name: "secret_versions");

            migrationBuilder.DropTable(
                name: "signing_keys");

            migrationBuilder.DropTable(
                name: "secrets");
        }
    }
}
