import Foundation
import GRDB
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// A linked app's destroy, rename and clone, and postgres:connect/export/import's
/// gate, on the recording engine (DatastoreTests' world: bob owns `web` and `db`,
/// dave writes web, carol reads it, eve is a stranger, alice an admin).
@Suite("Backing services: linked apps' lifecycle, connect/export/import access")
struct DatastoreLinkLifecycleTests {
    func links(_ w: TestWorld) throws -> Int {
        try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM service_links") ?? -1 }
    }

    /// The service leaves the app's network before the network goes; the link rows go
    /// with the app, and the service can then be destroyed.
    @Test func destroyingALinkedAppDisconnectsTheServiceFirst() throws {
        let w = try DatastoreTests().world(link: true)
        let engine = w.core.engine as! RecordingEngine
        // "connect postgres.db <web's network> as postgres-db", recorded by the link.
        let connect = try #require(engine.calls.first { $0.hasPrefix("connect postgres.db ") })
        let network = String(connect.split(separator: " ")[2])
        let destroyed = try w.run(["apps:destroy", "web", "--force"], asUser: "bob")
        #expect(destroyed.status == 0, "\(destroyed.err)")
        let disconnect = engine.calls.firstIndex(of: "disconnect postgres.db \(network)")
        let removal = engine.calls.lastIndex(of: "remove network \(network)")
        #expect(disconnect != nil && removal != nil && disconnect! < removal!, "\(engine.calls)")
        #expect(try links(w) == 0)
        let events = try w.run(["events"], asUser: "alice").out
        #expect(events.contains("destroyed app web; unlinked postgres db"), "\(events)")
        let info = try w.run(["postgres:info", "db", "--format", "json"], asUser: "bob")
        #expect(info.status == 0 && info.out.contains("\"links\":[]"), "\(info.out)")
        #expect(try w.run(["postgres:destroy", "db", "--force"], asUser: "bob").status == 0)
    }

    /// A rename keeps the link (it is by the app's id, as its network is).
    @Test func aRenamedAppStaysLinked() throws {
        let w = try DatastoreTests().world(link: true)
        let renamed = try w.run(["apps:rename", "web", "shop"], asUser: "bob")
        #expect(renamed.status == 0, "\(renamed.err)")
        #expect(try links(w) == 1)
        #expect(try w.run(["postgres:info", "db"], asUser: "bob").out.contains("shop (DATABASE_URL)"))
        #expect(try w.core.config.get(EnvKey("DATABASE_URL"), in: .app(AppName("shop"))) != nil)
        // dave writes the renamed app, so he still uses the service.
        #expect(try w.run(["postgres:info", "db"], asUser: "dave").status == 0)
        #expect(try w.run(["postgres:unlink", "db", "shop"], asUser: "bob").status == 0)
        #expect(try links(w) == 0)
    }

    /// A clone is not linked: it gets neither the link nor the URL (and so not the
    /// password), and the cloner is told how to link it.
    @Test func aCloneIsNotLinked() throws {
        let w = try DatastoreTests().world(link: true)
        #expect(try w.run(["config:set", "web", "OTHER=kept"], asUser: "bob").status == 0)
        for (user, copy) in [("bob", "copy"), ("dave", "daves")] {
            let cloned = try w.run(["apps:clone", "--skip-deploy", "web", copy], asUser: user)
            #expect(cloned.status == 0, "\(cloned.err)")
            #expect(cloned.err.contains("not copied: the service link DATABASE_URL (postgres:link db \(copy) links it)"), "\(cloned.err)")
            #expect(try w.core.config.get(EnvKey("DATABASE_URL"), in: .app(AppName(copy))) == nil)
            #expect(try w.core.config.get(EnvKey("OTHER"), in: .app(AppName(copy))) == "kept")
        }
        #expect(try links(w) == 1)
        // dave owns his clone but not the service: linking it is not his to do.
        let daveLinks = try w.run(["postgres:link", "db", "daves"], asUser: "dave")
        #expect(daveLinks.status != 0 && daveLinks.err.contains("needs its owner"), "\(daveLinks.err)")
        #expect(try links(w) == 1)
    }

    /// connect, export and import are the owner's and admins': a writer of a linked app
    /// is told so, a reader and a stranger get the missing service's answer, exactly.
    @Test func onlyOwnersAndAdminsConnectExportOrImport() throws {
        let w = try DatastoreTests().world(link: true)
        let sessions = [["postgres:connect", "db"], ["postgres:export", "db"], ["postgres:import", "db"]]
        let before = try w.dump()
        let engine = w.core.engine as! RecordingEngine
        // create's readiness probe was an exec; none may follow.
        let execs = engine.calls.filter { $0.hasPrefix("exec ") }.count
        for argv in sessions {
            let dave = try w.run(argv, asUser: "dave", stdin: "DROP TABLE x;\n")
            #expect(dave.status != 0 && dave.err.contains("needs its owner"), "\(argv): \(dave.err)")
            for stranger in ["eve", "carol"] {
                let hidden = try w.run(argv, asUser: stranger, stdin: "DROP TABLE x;\n")
                let missing = try w.run([argv[0], "nosuch"], asUser: stranger)
                #expect(hidden.status == 1 && hidden.err == missing.err.replacingOccurrences(of: "nosuch", with: "db"), "\(argv) \(stranger): \(hidden.err)")
            }
            // Hostile names never reach the engine.
            for name in ["../db", "-U", "db;x", "DB"] {
                let hostile = try w.run([argv[0], name], asUser: "bob")
                #expect(hostile.status != 0 && hostile.err.hasPrefix("error: "), "\(name): \(hostile.err)")
            }
        }
        #expect(engine.calls.filter { $0.hasPrefix("exec ") }.count == execs)
        func state(_ dump: String) -> [Substring] { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } }
        #expect(state(try w.dump()) == state(before))
        // The owner and an admin pass the gate (the recording engine has no running container).
        for user in ["bob", "alice"] {
            let passed = try w.run(["postgres:export", "db"], asUser: user)
            #expect(passed.status != 0 && passed.err.contains("postgres service db is not running"), "\(user): \(passed.err)")
        }
    }

    /// The server's postgres_image is what create uses without --image; it is never
    /// built nor pulled, and a bad value is refused when the config is read.
    @Test func theServerSettingPicksTheDefaultImage() throws {
        let w = try TestWorld { $0.postgresImage = "docker.io/library/postgres:15" }
        let engine = w.core.engine as! RecordingEngine
        #expect(w.run(["users:add", "bob"]).status == 0)
        let missing = try w.run(["postgres:create", "db"], asUser: "bob")
        #expect(missing.status != 0 && missing.err.contains("docker.io/library/postgres:15\" is not on this server"), "\(missing.err)")
        #expect(try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM services") } == 0)
        #expect(!engine.calls.contains { $0.hasPrefix("build ") })
        engine.images["docker.io/library/postgres:15"] = ImageInfo(id: "official", created: nil, size: 1, user: "", labels: [:])
        #expect(try w.run(["postgres:create", "db"], asUser: "bob").status == 0)
        #expect(engine.calls.contains("create docker.io/library/postgres:15"))
        // --image still wins.
        engine.images["slipway/postgres:15"] = ImageInfo(id: "pg", created: nil, size: 1, user: "", labels: [:])
        #expect(try w.run(["postgres:create", "db2", "--image", "slipway/postgres:15"], asUser: "bob").status == 0)
        #expect(engine.calls.contains("create slipway/postgres:15"))
        for bad in ["\"\"", "\"--privileged\"", "\"a b\"", "5"] {
            #expect(throws: UserFacingError.self) { try Settings.parse("postgres_image = \(bad)\n", source: "test") }
        }
        #expect(try Settings.parse("postgres_image = \"postgres:15\"\n", source: "test").postgresImage == "postgres:15")
    }

    /// The clients run over the local socket with the service's database, no password
    /// on the command line; import is one transaction and psql without a tty stops at
    /// the first error.
    @Test func sessionCommands() throws {
        let service = Datastore(kind: .postgres, name: DatastoreName(uncheckedRawValue: "my-db"), ownerId: 1, image: "i",
                                password: "secret", state: "running", createdAt: Date())
        let script = DatastoreService.sessionCommand(.connect, service, tty: false).command
        #expect(script.starts(with: ["psql", "-X", "-U", "postgres", "-d", "my_db"]) && script.contains("ON_ERROR_STOP=1"))
        #expect(!DatastoreService.sessionCommand(.connect, service, tty: true).command.contains("ON_ERROR_STOP=1"))
        #expect(DatastoreService.sessionCommand(.export, service, tty: false).command.contains("--format=custom"))
        #expect(DatastoreService.sessionCommand(.import, service, tty: false).command.contains("--single-transaction"))
        for session in [DatastoreService.Session.connect, .export, .import] {
            #expect(!DatastoreService.sessionCommand(session, service, tty: false).command.joined().contains("secret"))
        }
    }
}
