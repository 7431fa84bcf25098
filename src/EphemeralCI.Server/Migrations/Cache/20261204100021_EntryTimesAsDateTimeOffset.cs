using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace EphemeralCI.Server.Migrations.Cache
{
    /// <summary>
    /// Entry times become DateTimeOffset, stored as UTC ticks (INTEGER) like every other module's on SQLite; they
    /// were DateTime text ("yyyy-MM-dd HH:mm:ss.FFFFFFF", UTC). Up swaps each column for an INTEGER one without a
    /// table rebuild; Down (rare) converts back in place and lets EF rebuild the table to TEXT.
    /// </summary>
    public partial class EntryTimesAsDateTimeOffset : Migration
    {
        private static readonly string[] Columns = ["created_at", "committed_at", "last_accessed_at"];

        // 0001-01-01 to 1970-01-01 in ticks; seconds from strftime('%s'), the 7 fraction digits EF writes after the dot.
        private static string TicksToText(string c) =>
            $"UPDATE cache_entries SET {c} = strftime('%Y-%m-%d %H:%M:%S', (CAST({c} AS INTEGER) - 621355968000000000) / 10000000, 'unixepoch') " +
            $"|| CASE WHEN CAST({c} AS INTEGER) % 10000000 = 0 THEN '' ELSE rtrim('.' || printf('%07d', CAST({c} AS INTEGER) % 10000000), '0') END " +
            $"WHERE {c} IS NOT NULL AND {c} NOT LIKE '%-%';";

        // The indexes over the time columns, dropped and made again around the column swap.
        private static readonly (string Name, string[] Columns)[] TimeIndexes =
        [
            ("ix_cache_entries_repository_last_accessed_at", ["repository", "last_accessed_at"]),
            ("ix_cache_entries_state_created_at", ["state", "created_at"]),
            ("ix_cache_entries_repository_scope_last_accessed_at", ["repository", "scope", "last_accessed_at"]),
        ];

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Not AlterColumn: on SQLite that rebuilds the table with PRAGMA foreign_keys outside the migration's
            // transaction, which EF warns about on every fresh start (and which a crash could leave half done).
            // Instead, in the transaction: a new INTEGER column per time, filled from the text, the old one
            // dropped and the new one renamed (ALTER TABLE DROP/RENAME COLUMN, SQLite 3.35+).
            foreach (var (name, _) in TimeIndexes) migrationBuilder.DropIndex(name: name, table: "cache_entries");
            foreach (var column in Columns)
            {
                var nullable = column == "committed_at";
                migrationBuilder.Sql($"ALTER TABLE cache_entries ADD COLUMN {column}_ticks INTEGER{(nullable ? "" : " NOT NULL DEFAULT 0")};");
                migrationBuilder.Sql(
                    $"UPDATE cache_entries SET {column}_ticks = 621355968000000000 + CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 10000000 " +
                    $"+ CAST(substr(substr({column}, 21) || '0000000', 1, 7) AS INTEGER) WHERE {column} LIKE '____-__-__ __:__:__%';");
                migrationBuilder.Sql($"ALTER TABLE cache_entries DROP COLUMN {column};");
                migrationBuilder.Sql($"ALTER TABLE cache_entries RENAME COLUMN {column}_ticks TO {column};");
            }
            foreach (var (name, columns) in TimeIndexes) migrationBuilder.CreateIndex(name: name, table: "cache_entries", columns: columns);
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
