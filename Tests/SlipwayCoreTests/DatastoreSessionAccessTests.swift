import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// redis:connect/export/import and <kind>:upgrade from the side of the users who must
/// not get in, and `--image` values that would reach what is not the caller's.
@Suite("Backing services: sessions, upgrade and --image from the attacker's side")
struct DatastoreSessionAccessTests {
    /// alice (admin), bob (owns `web`, the redis service `cache` and the postgres
    /// service `db`, both linked to web), eve (owns `evil`), carol (reads web), dave (writes web).
    func world() throws -> TestWorld {
        let w = try TestWorld()
        let engine = w.core.engine as! RecordingEngine
        for image in ["slipway/redis:7", "slipway/postgres:15", "postgres:16", "redis:7.2"] {
            engine.images[image] = ImageInfo(id: image, created: nil, size: 1, user: "", labels: [DatastoreService.versionLabel: "x"])
        }
        // What a tenant's app image looks like on the server, and an innocent-looking
        // name an attacker might have tagged onto one.
        engine.images["slipway/web:0123456789ab"] = ImageInfo(id: "appimage", created: nil, size: 1, user: "", labels: [:])
        var disguised = ImageInfo(id: "appimage", created: nil, size: 1, user: "", labels: [:])
        disguised.tags = ["localhost/slipway/web:0123456789ab", "localhost/innocent:1"]
        engine.images["innocent:1"] = disguised
        for (name, admin) in [("alice", true), ("bob", false), ("eve", false), ("carol", false), ("dave", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "evil"], asUser: "eve").status == 0)
        #expect(try w.run(["acl:add", "web", "carol", "read"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "write"], asUser: "bob").status == 0)
        for argv in [["redis:create", "cache"], ["postgres:create", "db"], ["redis:link", "cache", "web"], ["postgres:link", "db", "web"]] {
            let r = try w.run(argv, asUser: "bob")
            #expect(r.status == 0, "\(argv): \(r.err)")
        }
        return w
    }

    func state(_ w: TestWorld) throws -> [Substring] { try w.dump().split(separator: "\n").filter { !$0.hasPrefix("events:") } }

    static let probes: [[String]] = [
        ["redis:connect", "cache"], ["redis:export", "cache"], ["redis:import", "cache"],
        ["redis:upgrade", "cache", "--image", "redis:7.2"], ["postgres:upgrade", "db", "--image", "postgres:16"],
    ]

    /// eve (a stranger) and carol (a reader of the linked app) get exactly the answers for
    /// a service that does not exist; dave (a writer of the linked app) is told it needs
    /// the owner. Nothing changes and nothing runs in the engine.
    @Test func strangersAndReadersSeeNothingAndWritersCannotManage() throws {
        let w = try world()
        let engine = w.core.engine as! RecordingEngine
        let before = try state(w), calls = engine.calls.count
        func answers(_ user: String) throws -> [String] {
            try Self.probes.map { let r = try w.run($0, asUser: user, stdin: "REDIS0011 hostile"); return "\(r.status) \(r.out) \(r.err)" }
        }
        let hidden = try answers("eve"), hiddenToReader = try answers("carol")
        for argv in Self.probes {
            let r = try w.run(argv, asUser: "dave", stdin: "FLUSHALL\n")
            #expect(r.status != 0 && r.err.contains("needs its owner"), "\(argv): \(r.err)")
        }
        #expect(try state(w) == before)
        let after = engine.calls.dropFirst(calls)
        #expect(!after.contains { $0.hasPrefix("exec") || $0.hasPrefix("create") || $0.hasPrefix("stop") || $0.hasPrefix("remove") }, "\(after)")

        for argv in [["redis:unlink", "cache", "web"], ["postgres:unlink", "db", "web"], ["redis:destroy", "cache", "--force"], ["postgres:destroy", "db", "--force"]] {
            #expect(try w.run(argv, asUser: "bob").status == 0)
        }
        #expect(try answers("eve") == hidden)
        #expect(try answers("carol") == hiddenToReader)
        #expect(hidden.allSatisfy { $0.hasPrefix("1 ") && $0.contains("service \"") && $0.contains("not found") }, "\(hidden)")
    }

    /// Host paths, option-like strings, ids and digests, and Slipway's own images (other
    /// tenants' apps and dependencies, the builder) are refused by create and upgrade
    /// with an error, before anything runs.
    @Test func hostileImagesAreRefusedAndChangeNothing() throws {
        let w = try world()
        let engine = w.core.engine as! RecordingEngine
        let before = try state(w), calls = engine.calls.count
        let hostile = [
            "/etc/passwd", "/var/lib/slipway", "--privileged", "-v=/:/host", "x --privileged", "busybox\n--privileged",
            "../x", "a/../../b", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789ab",
            "appimage", "postgres@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "slipway/web:0123456789ab", "localhost/slipway/web:0123456789ab", "docker.io/slipway/web:0123456789ab",
            "slipway/deps-abc-app-1:key", "slipway/builder:bookworm", "slipway/redis:7", "innocent:1", "POSTGRES:16", "",
        ]
        for image in hostile {
            for argv in [["postgres:upgrade", "db", "--image", image], ["postgres:create", "other", "--image", image]] {
                let r = try w.run(argv, asUser: "bob")
                #expect(r.status != 0 && r.err.contains("error: ") && !r.out.contains("upgraded") && !r.out.contains("created"), "\(argv): \(r.status) \(r.err)")
            }
        }
        // The other kind's service image is not this kind's.
        let crossed = try w.run(["redis:upgrade", "cache", "--image", "slipway/postgres:15"], asUser: "bob")
        #expect(crossed.status == 1 && crossed.err.contains("Slipway's own images"), "\(crossed.err)")
        // Not on the server: never pulled.
        let absent = try w.run(["redis:upgrade", "cache", "--image", "docker.io/library/redis:8"], asUser: "bob")
        #expect(absent.status == 1 && absent.err.contains("not on this server"), "\(absent.err)")
        // The image it runs already.
        let same = try w.run(["postgres:upgrade", "db", "--image", "slipway/postgres:15"], asUser: "bob")
        #expect(same.status == 1 && same.err.contains("already runs"), "\(same.err)")
        #expect(try state(w) == before)
        let after = engine.calls.dropFirst(calls)
        #expect(!after.contains { $0.hasPrefix("exec") || $0.hasPrefix("create") || $0.hasPrefix("stop") || $0.hasPrefix("build") }, "\(after)")
        // Admins are held to the same names (they can tag an image otherwise).
        #expect(w.run(["postgres:create", "adm", "--image", "slipway/web:0123456789ab"]).status == 1)
        // A plain image an admin loaded is fine.
        let fine = try w.run(["postgres:create", "other", "--image", "postgres:16"], asUser: "bob")
        #expect(fine.status == 0, "\(fine.err)")
    }

    /// The clients' command lines: no password in argv; psql's pager off on a terminal
    /// of no size (ssh -tt from a script), where it would wait for a key forever.
    @Test func sessionCommandsKeepPasswordsOffArgvAndThePagerOffWithoutASize() throws {
        let redis = Datastore(kind: .redis, name: DatastoreName(uncheckedRawValue: "cache"), ownerId: 1, image: "slipway/redis:7",
                              password: "s3cretpassw0rd", state: "running", createdAt: Date())
        for session in [DatastoreService.Session.connect, .export] {
            let (command, environment) = DatastoreService.sessionCommand(session, redis, tty: false)
            #expect(!command.joined(separator: " ").contains("s3cretpassw0rd") && environment["REDISCLI_AUTH"] == "s3cretpassw0rd")
        }
        var postgres = redis
        postgres.kind = .postgres
        #expect(DatastoreService.sessionCommand(.connect, postgres, tty: true, pagerOff: true).command.suffix(2) == ["-P", "pager=off"])
        #expect(!DatastoreService.sessionCommand(.connect, postgres, tty: true, pagerOff: false).command.contains("pager=off"))
        #expect(DatastoreService.sessionCommand(.connect, postgres, tty: false).command.contains("ON_ERROR_STOP=1"))
    }
}
