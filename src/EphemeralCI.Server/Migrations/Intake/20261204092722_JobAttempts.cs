using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Intake
{
    /// <inheritdoc />
    public partial class JobAttempts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "attempt",
                table: "jobs",
                type: "INTEGER",
                nullable: false,
                defaultValue: 1); // every job from before retries is its first attempt

            migrationBuilder.AddColumn<int>(
                name: "destroyed_attempt",
                table: "jobs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "log_base",
                table: "jobs",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<bool>(
                name: "retry_pending",
                table: "jobs",
                type: "INTEGER",
                nullable: false,
                defaultValue: false);

            // A job whose runner was already reported destroyed: its (first) attempt's runner is gone.
            migrationBuilder.Sql(
                "UPDATE jobs SET destroyed_attempt = 1 WHERE EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = jobs.id AND e.type = 'runner.destroyed')");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "attempt",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "destroyed_attempt",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "log_base",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "retry_pending",
                table: "jobs");
        }
    }
}
