import GRDB

extension Database {
    /// A row id never used before in `table` (one with a row in `id_high_water`).
    /// SQLite reuses the largest id once its row is deleted, so an app or a storage
    /// made after another was destroyed could take its id, and with it whatever still
    /// names that id (its events, a release's storage reference).
    func freshID(_ table: String) throws -> Int64 {
        let highest = try Int64.fetchOne(self, sql: "SELECT MAX(id) FROM \(table)") ?? 0
        let issued = try Int64.fetchOne(self, sql: "SELECT value FROM id_high_water WHERE name = ?", arguments: [table]) ?? 0
        let id = max(highest, issued) + 1
        try execute(sql: """
            INSERT INTO id_high_water (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value
            """, arguments: [table, id])
        return id
    }
}
