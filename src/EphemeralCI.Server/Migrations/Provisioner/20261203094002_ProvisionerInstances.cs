using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Provisioner
{
    /// <inheritdoc />
    public partial class ProvisionerInstances : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "CancelRequestedAt",
                table: "runners",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Instance",
                table: "runners",
                type: "TEXT",
                maxLength: 128,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "provisioner_instances",
                columns: table => new
                {
                    Name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    Incarnation = table.Column<Guid>(type: "TEXT", nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    ProcessId = table.Column<int>(type: "INTEGER", nullable: false),
                    StartedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    HeartbeatAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_provisioner_instances", x => x.Name);
                });

            migrationBuilder.CreateIndex(
                name: "IX_runners_CancelRequestedAt",
                table: "runners",
                column: "CancelRequestedAt");

            migrationBuilder.CreateIndex(
                name: "IX_runners_Instance_State",
                table: "runners",
                columns: new[] { "Instance", "State" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "provisioner_instances");

            migrationBuilder.DropIndex(
                name: "IX_runners_CancelRequestedAt",
                table: "runners");

            migrationBuilder.DropIndex(
                name: "IX_runners_Instance_State",
                table: "runners");

            migrationBuilder.DropColumn(
                name: "CancelRequestedAt",
                table: "runners");

            migrationBuilder.DropColumn(
                name: "Instance",
                table: "runners");
        }
    }
}
