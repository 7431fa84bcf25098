using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Intake
{
    /// <inheritdoc />
    public partial class WarmPoolReports : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "reported_warm_pools",
                columns: table => new
                {
                    instance = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    template = table.Column<string>(type: "TEXT", maxLength: 63, nullable: false),
                    backend = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    target = table.Column<int>(type: "INTEGER", nullable: false),
                    ready = table.Column<int>(type: "INTEGER", nullable: false),
                    reported_at = table.Column<long>(type: "INTEGER", nullable: false),
                    fresh_until = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_reported_warm_pools", x => new { x.instance, x.template });
                });

            migrationBuilder.CreateIndex(
                name: "ix_reported_warm_pools_fresh_until",
                table: "reported_warm_pools",
                column: "fresh_until");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "reported_warm_pools");
        }
    }
}
