import Foundation
import GRDB
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Apps and storage are known by identity: an id is never handed out again, so
/// whatever names an id (events, a release's storage) never reaches a newcomer.
@Suite("Identity: ids are never reused")
struct IdentityTests {
    @Test func aDestroyedAppsOrStoragesIdIsNeverTakenAgain() throws {
        let w = try TestWorld()
        func id(_ table: String, _ name: String) throws -> Int64? {
            try w.core.store.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM \(table) WHERE name = ?", arguments: [name]) }
        }
        #expect(w.run(["apps:create", "shop"]).status == 0)
        #expect(w.run(["storage:create", "loot"]).status == 0)
        let (app, storage) = (try id("apps", "shop"), try id("storages", "loot"))
        #expect(w.run(["apps:destroy", "shop", "--force"]).status == 0)
        #expect(w.run(["storage:destroy", "loot", "--force"]).status == 0)
        #expect(w.run(["apps:create", "shop"]).status == 0)
        #expect(w.run(["storage:create", "loot"]).status == 0)
        // SQLite alone would give the largest id out again once its row is gone.
        #expect(try id("apps", "shop") != app && id("storages", "loot") != storage)
    }
}
