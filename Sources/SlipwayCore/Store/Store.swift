import Foundation
import GRDB

/// The state database: `<data-dir>/slipway.db`, SQLite in WAL mode with foreign keys.
///
/// Every mutating service call is one `write` (an IMMEDIATE transaction), so
/// concurrent processes serialise on SQLite's lock instead of losing updates.
public final class Store: Sendable {
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // Many short-lived CLI processes and SSH sessions write at once: wait for
        // the lock instead of failing with "database is locked".
        configuration.busyMode = .timeout(30)
        configuration.label = "slipway"
        pool = try DatabasePool(path: path, configuration: configuration)
        try Migrations.migrator.migrate(pool)
    }

    /// A fresh database in a new temporary directory, for tests.
    public static func temporary() throws -> Store {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try Store(path: dir.appendingPathComponent("slipway.db").path)
    }

    /// A read-only snapshot of the state.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// One IMMEDIATE transaction: all of `body` or none of it.
    public func write<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.write(body)
    }
}
