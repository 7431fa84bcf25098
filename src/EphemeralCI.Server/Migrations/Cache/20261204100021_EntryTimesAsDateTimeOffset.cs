using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Cache
{
    /// <summary>
    /// Entry times become DateTimeOffset, stored as UTC ticks (INTEGER) like every other module's on SQLite; they
    /// were DateTime text ("yyyy-MM-dd HH:mm:ss.FFFFFFF", UTC). The values are converted in place. Each statement
    /// picks its rows by their shape, not their storage class, so it is right whether SQLite's table rebuild (for
    /// the column type) runs before or after it: column affinity turns a digit string into an integer and back.
    /// </summary>
    public partial class EntryTimesAsDateTimeOffset : Migration
    {
        private static readonly string[] Columns = ["created_at", "committed_at", "last_accessed_at"];

        // 0001-01-01 to 1970-01-01 in ticks; seconds from strftime('%s'), the 7 fraction digits EF writes after the dot.
        private static string TextToTicks(string c) =>
            $"UPDATE cache_entries SET {c} = 621355968000000000 + CAST(strftime('%s', substr({c}, 1, 19)) AS INTEGER) * 10000000 " +
            $"+ CAST(substr(substr({c}, 21) || '0000000', 1, 7) AS INTEGER) WHERE {c} LIKE '____-__-__ __:__:__%';";

        private static string TicksToText(string c) =>
            $"UPDATE cache_entries SET {c} = strftime('%Y-%m-%d %H:%M:%S', (CAST({c} AS INTEGER) - 621355968000000000) / 10000000, 'unixepoch') " +
            $"|| CASE WHEN CAST({c} AS INTEGER) % 10000000 = 0 THEN '' ELSE rtrim('.' || printf('%07d', CAST({c} AS INTEGER) % 10000000), '0') END " +
            $"WHERE {c} IS NOT NULL AND {c} NOT LIKE '%-%';";

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<long>(
                name: "last_accessed_at",
                table: "cache_entries",
                type: "INTEGER",
                nullable: false,
                oldClrType: typeof(DateTime),
                oldType: "TEXT");

            migrationBuilder.AlterColumn<long>(
                name: "created_at",
                table: "cache_entries",
                type: "INTEGER",
                nullable: false,
                oldClrType: typeof(DateTime),
                oldType: "TEXT");

            migrationBuilder.AlterColumn<long>(
                name: "committed_at",
                table: "cache_entries",
                type: "INTEGER",
                nullable: true,
                oldClrType: typeof(DateTime),
                oldType: "TEXT",
                oldNullable: true);

            foreach (var column in Columns) migrationBuilder.Sql(TextToTicks(column));
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            foreach (var column in Columns) migrationBuilder.Sql(TicksToText(column));

            migrationBuilder.AlterColumn<DateTime>(
                name: "last_accessed_at",
                table: "cache_entries",
                type: "TEXT",
                nullable: false,
                oldClrType: typeof(long),
                oldType: "INTEGER");

            migrationBuilder.AlterColumn<DateTime>(
                name: "created_at",
                table: "cache_entries",
                type: "TEXT",
                nullable: false,
                oldClrType: typeof(long),
                oldType: "INTEGER");

            migrationBuilder.AlterColumn<DateTime>(
                name: "committed_at",
                table: "cache_entries",
                type: "TEXT",
                nullable: true,
                oldClrType: typeof(long),
                oldType: "INTEGER",
                oldNullable: true);
        }
    }
}
