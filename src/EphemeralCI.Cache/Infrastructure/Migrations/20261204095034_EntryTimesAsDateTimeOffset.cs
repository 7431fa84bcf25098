using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Cache.Infrastructure.Migrations
{
    /// <summary>
    /// Entry times become DateTimeOffset. Nothing changes in Postgres: Npgsql already stored the UTC DateTimes in
    /// <c>timestamp with time zone</c> columns, which is what DateTimeOffset maps to. The migration records the new
    /// CLR type in the model snapshot (SQLite's twin in EphemeralCI.Server converts its text to ticks).
    /// </summary>
    public partial class EntryTimesAsDateTimeOffset : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
        }
    }
}
