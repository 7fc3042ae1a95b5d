import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// postgres:* on a temp store with the recording engine: the model, links and every
/// access rule, written from the side of the users who must not get in.
@Suite("Backing services: model and access")
struct DatastoreTests {
    /// alice (admin), bob (owns `web` and the service `db`), eve (owns `evil`), carol
    /// (reads web), dave (writes web).
    func world(link: Bool = false) throws -> TestWorld {
        let w = try TestWorld()
        (w.core.engine as! RecordingEngine).images["slipway/postgres:15"] =
            ImageInfo(id: "pg", created: nil, size: 1, user: "", labels: [DatastoreService.versionLabel: "15"])
        for (name, admin) in [("alice", true), ("bob", false), ("eve", false), ("carol", false), ("dave", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "evil"], asUser: "eve").status == 0)
        #expect(try w.run(["acl:add", "web", "carol", "read"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "write"], asUser: "bob").status == 0)
        let created = try w.run(["postgres:create", "db"], asUser: "bob")
        #expect(created.status == 0, "\(created.err)")
        if link {
            let linked = try w.run(["postgres:link", "db", "web"], asUser: "bob")
            #expect(linked.status == 0, "\(linked.err)")
        }
        return w
    }

    func unchanged(_ w: TestWorld, _ before: String) throws {
        func state(_ dump: String) -> [Substring] { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } }
        let after = state(try w.dump()), was = state(before)
        #expect(after == was, "\(after.filter { !was.contains($0) })")
    }

    @Test func createLinkUnlinkDestroy() throws {
        let w = try world()
        let engine = w.core.engine as! RecordingEngine
        #expect(engine.calls.contains("create slipway/postgres:15"))
        let info = try w.run(["postgres:info", "db", "--format", "json"], asUser: "bob")
        #expect(info.status == 0, "\(info.err)")
        let parsed = try JSONDecoder().decode([String: AnyJSON].self, from: Data(info.out.utf8))
        #expect(parsed["owner"]?.string == "bob" && parsed["version"]?.string == "15" && parsed["password"] == nil)
        #expect(info.out.split(separator: "\n").count == 1)

        let linked = try w.run(["postgres:link", "db", "web"], asUser: "bob")
        #expect(linked.status == 0, "\(linked.err)")
        let password = try w.core.store.read { db in try String.fetchOne(db, sql: "SELECT password FROM services") }!
        let url = try w.core.config.get(EnvKey("DATABASE_URL"), in: .app(AppName("web")))
        #expect(url == "postgres://postgres:\(password)@postgres-db:5432/db")
        #expect(engine.calls.contains { $0.hasPrefix("connect postgres.db slipway-") && $0.hasSuffix("-app-1 as postgres-db") })
        #expect(!linked.out.contains(password) && !linked.err.contains(password))

        let shown = try w.run(["postgres:info", "db", "--show-password"], asUser: "bob")
        #expect(shown.status == 0 && shown.out.contains(password))

        // Refused while linked, before the question: nothing goes.
        let before = try w.dump()
        let refused = try w.run(["postgres:destroy", "db", "--force"], asUser: "bob")
        #expect(refused.status != 0 && refused.err.contains("linked to web"), "\(refused.err)")
        try unchanged(w, before)

        #expect(try w.run(["postgres:unlink", "db", "web"], asUser: "bob").status == 0)
        #expect(try w.core.config.get(EnvKey("DATABASE_URL"), in: .app(AppName("web"))) == nil)
        #expect(engine.calls.contains { $0.hasPrefix("disconnect postgres.db slipway-") })

        let wrongAnswer = try w.run(["postgres:destroy", "db"], asUser: "bob", stdin: "dc\n")
        #expect(wrongAnswer.status != 0)
        #expect(try w.run(["postgres:destroy", "db"], asUser: "bob", stdin: "db\n").status == 0)
        #expect(try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM services") } == 0)
        #expect(!FileManager.default.fileExists(atPath: w.core.paths.servicesRoot + "/1"))
    }

    /// A stranger's answers for bob's service are exactly those for a service that does not exist.
    @Test func hiddenServicesAnswerLikeMissingOnes() throws {
        let w = try world(link: true)
        let probes: [[String]] = [
            ["postgres:info", "db"], ["postgres:info", "db", "--show-password"], ["postgres:link", "db", "evil"],
            ["postgres:unlink", "db", "web"], ["postgres:restart", "db"], ["postgres:logs", "db"], ["postgres:destroy", "db", "--force"],
        ]
        func answers(_ user: String) throws -> [String] {
            try probes.map { let r = try w.run($0, asUser: user); return "\(r.status) \(r.out) \(r.err)" }
        }
        let before = try w.dump()
        let hidden = try answers("eve"), hiddenToReader = try answers("carol")
        try unchanged(w, before)
        let list = try w.run(["postgres:list", "--format", "json"], asUser: "eve")
        #expect(list.status == 0 && list.out == "[]\n", "\(list.out)")

        #expect(try w.run(["postgres:unlink", "db", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["postgres:destroy", "db", "--force"], asUser: "bob").status == 0)
        let missing = try answers("eve")
        #expect(hidden == missing)
        let missingToReader = try answers("carol")
        #expect(hiddenToReader == missingToReader)
        #expect(hidden.allSatisfy { $0.hasPrefix("1 ") && $0.contains("postgres service \"db\" not found") }, "\(hidden)")
    }

    @Test func tenantsCannotCrossLinks() throws {
        let w = try world()
        #expect(try w.run(["postgres:create", "evdb"], asUser: "eve").status == 0)
        let before = try w.dump()
        // eve's service into bob's app: the app is not hers to see.
        let intoTheirApp = try w.run(["postgres:link", "evdb", "web"], asUser: "eve")
        #expect(intoTheirApp.status != 0 && intoTheirApp.err.contains("app \"web\""), "\(intoTheirApp.err)")
        // bob's service into eve's app: the service is not hers to see.
        let theirService = try w.run(["postgres:link", "db", "evil"], asUser: "eve")
        #expect(theirService.status != 0 && theirService.err.contains("postgres service \"db\" not found"), "\(theirService.err)")
        // Nor can she take the name.
        let taken = try w.run(["postgres:create", "db"], asUser: "eve")
        #expect(taken.status != 0 && taken.err.contains("already exists"))
        try unchanged(w, before)
    }

    /// A writer of a linked app uses the service (they hold DATABASE_URL anyway) but
    /// cannot manage it; a reader of that app gets the missing answer.
    @Test func linkedAppWritersUseButDoNotManage() throws {
        let w = try world(link: true)
        #expect(try w.run(["postgres:info", "db"], asUser: "dave").status == 0)
        let list = try w.run(["postgres:list"], asUser: "dave")
        #expect(list.out.contains("db"))
        let before = try w.dump()
        for argv in [["postgres:info", "db", "--show-password"], ["postgres:link", "db", "web", "--alias", "OTHER_URL"],
                     ["postgres:unlink", "db", "web"], ["postgres:destroy", "db", "--force"]] {
            let denied = try w.run(argv, asUser: "dave")
            #expect(denied.status != 0 && denied.err.contains("needs its owner"), "\(argv): \(denied.err)")
            let reader = try w.run(argv, asUser: "carol")
            #expect(reader.status != 0 && reader.err.contains("not found"), "\(argv): \(reader.err)")
        }
        let readerInfo = try w.run(["postgres:info", "db"], asUser: "carol")
        #expect(readerInfo.status != 0 && readerInfo.err.contains("not found"))
        try unchanged(w, before)
        // An admin manages every service.
        #expect(try w.run(["postgres:info", "db", "--show-password"], asUser: "alice").status == 0)
    }

    @Test func hostileValuesAreRefusedAndChangeNothing() throws {
        let w = try world()
        let before = try w.dump()
        for name in ["../x", "DB", "-x", "a_b", "x-", String(repeating: "a", count: 33), "1db"] {
            let r = try w.run(["postgres:create", name], asUser: "bob")
            #expect(r.status != 0 && r.err.contains("error: "), "\(name): \(r.err)")
        }
        for image in ["--privileged", "x y", "busybox\nx"] {
            let r = try w.run(["postgres:create", "img", "--image", image], asUser: "bob")
            #expect(r.status != 0, "\(image)")
        }
        // An image not on the server is never pulled.
        let absent = try w.run(["postgres:create", "img", "--image", "docker.io/library/postgres:15"], asUser: "bob")
        #expect(absent.status != 0 && absent.err.contains("not on this server"), "\(absent.err)")
        for alias in ["1BAD", "A=B", "A B", "", "DATABASE-URL"] {
            let r = try w.run(["postgres:link", "db", "web", "--alias", alias], asUser: "bob")
            #expect(r.status != 0, "\(alias): \(r.out) \(r.err)")
        }
        // A var the app already has is not overwritten.
        #expect(try w.run(["config:set", "web", "DATABASE_URL=mine"], asUser: "bob").status == 0)
        let mine = try w.dump()
        let clash = try w.run(["postgres:link", "db", "web"], asUser: "bob")
        #expect(clash.status != 0 && clash.err.contains("already has config var DATABASE_URL"), "\(clash.out) \(clash.err)")
        try unchanged(w, mine)
        _ = before
    }

    @Test func servicesHaveRangesAndNetworksNoAppHas() throws {
        let first = try TenantSandbox(serviceID: 1, instance: "i")
        let last = try TenantSandbox(serviceID: Int64(IDRange.serviceCapacity), instance: "i")
        let lastApp = try TenantSandbox(appID: Int64(IDRange.appCapacity - IDRange.serviceCapacity) - 1, instance: "i")
        #expect(lastApp.idRange.hostBase < last.idRange.hostBase && last.idRange.hostBase < first.idRange.hostBase)
        #expect(first.idRange.hostBase + IDRange.size - 1 <= UInt32.max)
        #expect(throws: UserFacingError.self) { try TenantSandbox(appID: Int64(IDRange.appCapacity - IDRange.serviceCapacity), instance: "i") }
        let app1 = try TenantSandbox(appID: 1, instance: "i")
        #expect(first.network == "slipway-i-svc-1" && first.network != app1.network)
    }
}
