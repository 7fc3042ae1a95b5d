import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// The access model, through the same runner the CLI and SSH use.
@Suite("One gate: who may do what")
struct AccessTests {
    /// alice (admin) and bob, carol (users); alices-app owned by alice, bobs-app by bob.
    func world() throws -> TestWorld {
        let w = try TestWorld()
        for (name, admin) in [("alice", true), ("bob", false), ("carol", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "alices-app"], asUser: "alice").status == 0)
        #expect(try w.run(["apps:create", "bobs-app"], asUser: "bob").status == 0)
        return w
    }

    @Test func usersSeeOnlyTheirApps() throws {
        let w = try world()
        let bob = try w.run(["apps:list", "--format", "json"], asUser: "bob")
        #expect(try JSONDecoder().decode([String].self, from: Data(bob.out.utf8)) == ["bobs-app"])
        let viaAs = w.run(["--as", "bob", "apps:list"])
        #expect(viaAs.out.contains("bobs-app") && !viaAs.out.contains("alices-app"))
        let admin = try w.run(["apps:list"], asUser: "alice")
        #expect(admin.out.contains("bobs-app") && admin.out.contains("alices-app"))
    }

    @Test func anotherTenantsAppLooksMissing() throws {
        let w = try world()
        let hidden = try w.run(["config:get", "alices-app", "X"], asUser: "bob")
        let missing = try w.run(["config:get", "no-such-app", "X"], asUser: "bob")
        #expect(hidden.status == missing.status)
        #expect(hidden.status != 0)
        #expect(hidden.err.replacingOccurrences(of: "alices-app", with: "APP") == missing.err.replacingOccurrences(of: "no-such-app", with: "APP"))
        #expect(hidden.err.hasPrefix("error: app \"alices-app\" not found"))
        for argv in [["apps:report", "alices-app"], ["config:set", "alices-app", "A=1"], ["apps:destroy", "alices-app", "--force"],
                     ["acl:add", "alices-app", "bob", "owner"], ["storage:mount", "alices-app", "x:/x"], ["apps:lock", "alices-app"]] {
            let result = try w.run(argv, asUser: "bob")
            #expect(result.status == 1 && result.err.contains("not found"), "\(argv)")
        }
    }

    @Test func hostPathsAndGlobalsAreForAdmins() throws {
        let w = try world()
        let before = try w.dump()
        let mount = w.run(["--as", "bob", "storage:mount", "bobs-app", "/etc:/x"])
        #expect(mount.status == 1 && mount.err.contains("only server admins"))
        #expect(try w.run(["config:set", "--global", "A=1"], asUser: "bob").status == 1)
        let afterDenials = try w.dump()
        // Only the audit log grew (two failed attempts recorded).
        #expect(before.split(separator: "\n").filter { !$0.hasPrefix("events") } == afterDenials.split(separator: "\n").filter { !$0.hasPrefix("events") })
        #expect(try w.run(["storage:mount", "bobs-app", "/srv/shared:/shared"], asUser: "alice").status == 0)
        #expect(try w.run(["storage:report", "bobs-app"], asUser: "bob").out.contains("/srv/shared"))
    }

    @Test func collaboratorLevels() throws {
        let w = try world()
        #expect(try w.run(["acl:add", "bobs-app", "carol", "read"], asUser: "bob").status == 0)
        #expect(try w.run(["config:get", "bobs-app", "A"], asUser: "carol").status == 1) // readable, unset
        let denied = try w.run(["config:set", "bobs-app", "A=1"], asUser: "carol")
        #expect(denied.status == 1 && denied.err.contains("you have read access"))
        #expect(try w.run(["acl:add", "bobs-app", "carol", "write"], asUser: "carol").status == 1)
        #expect(try w.run(["acl:add", "bobs-app", "carol", "write"], asUser: "bob").status == 0)
        #expect(try w.run(["config:set", "bobs-app", "A=1"], asUser: "carol").status == 0)
        #expect(try w.run(["apps:destroy", "bobs-app", "--force"], asUser: "carol").err.contains("this needs owner access"))
        // The last owner cannot leave.
        #expect(try w.run(["acl:remove", "bobs-app", "bob"], asUser: "bob").err.contains("last owner"))
        #expect(try w.run(["acl:remove", "bobs-app", "carol"], asUser: "bob").status == 0)
        #expect(try w.run(["config:get", "bobs-app", "A"], asUser: "carol").err.contains("not found"))
    }

    @Test func storageBelongsToItsOwner() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "bob-data"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "carols-app"], asUser: "carol").status == 0)
        let steal = try w.run(["storage:mount", "carols-app", "bob-data:/data"], asUser: "carol")
        #expect(steal.status == 1 && steal.err.contains("belongs to another user"))
        #expect(try w.run(["storage:destroy", "bob-data"], asUser: "carol").err.contains("not found"))
        #expect(try w.run(["storage:mount", "bobs-app", "bob-data:/data", "--phase", "run", "--readonly"], asUser: "bob").status == 0)
        let report = try w.run(["storage:report", "bobs-app", "--format", "json"], asUser: "bob")
        #expect(report.out.contains("\"attachment.1.readonly\":\"true\"") && report.out.contains("\"attachment.1.phases\":\"run\""), "\(report.out)")
        #expect(try w.run(["storage:destroy", "bob-data", "--force"], asUser: "bob").err.contains("mounted by bobs-app"))
        // First mount of an unknown name creates it for the caller.
        #expect(try w.run(["storage:mount", "bobs-app", "fresh:/fresh"], asUser: "bob").out.contains("created"))
        #expect(FileManager.default.fileExists(atPath: w.core.paths.storage(try StorageName("fresh"))))
    }

    @Test func asIsForAdminsOnly() throws {
        let w = try world()
        let result = try w.run(["--as", "carol", "apps:list"], asUser: "bob")
        #expect(result.status == 1 && result.err.contains("only server admins may use --as"))
        #expect(w.run(["--as", "nobody", "apps:list"]).err.contains("user \"nobody\" not found"))
    }

    @Test func helpListsOnlyWhatTheCallerMayRun() throws {
        let w = try world()
        let user = try w.run(["help"], asUser: "bob")
        #expect(user.out.contains("apps:create") && !user.out.contains("users:add") && !user.out.contains("ssh-keys:add"))
        #expect(try w.run([], asUser: "bob").out == user.out)
        let admin = try w.run(["help"], asUser: "alice")
        #expect(admin.out.contains("users:add") && admin.out.contains("ssh-keys:add"))
        let hiddenHelp = try w.run(["users:add", "--help"], asUser: "bob")
        #expect(hiddenHelp.status == 1 && hiddenHelp.out.isEmpty && hiddenHelp.err.contains("for server admins only"))
        let ownHelp = try w.run(["config:set", "--help"], asUser: "bob")
        #expect(ownHelp.status == 0 && ownHelp.out.contains("--encoded"))
        #expect(try w.run(["help", "config:get"], asUser: "bob").out.contains("USAGE"))
    }

    @Test func lastAdminCannotBeRemovedOrDemoted() throws {
        let w = try world()
        #expect(w.run(["users:remove", "alice"]).err.contains("last admin"))
        #expect(w.run(["users:set-admin", "alice", "false"]).err.contains("last admin"))
        #expect(w.run(["users:set-admin", "bob", "true"]).status == 0)
        #expect(w.run(["users:set-admin", "alice", "false"]).status == 0)
        #expect(w.run(["users:set-admin", "bob", "false"]).err.contains("last admin"))
    }

    @Test func removingAUserWhoOwnsAppsNamesThem() throws {
        let w = try world()
        let refused = w.run(["users:remove", "bob"])
        #expect(refused.status == 1 && refused.err.contains("only owner of bobs-app"))
        #expect(w.run(["acl:add", "bobs-app", "carol", "owner"]).status == 0)
        #expect(w.run(["users:remove", "bob"]).status == 0)
        #expect(try w.run(["apps:list"], asUser: "carol").out.contains("bobs-app"))
    }
}

/// Just enough JSON for assertions.
enum AnyJSON: Decodable {
    case string(String), number(Double), bool(Bool), array([AnyJSON]), object([String: AnyJSON]), null

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Double.self) { self = .number(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([AnyJSON].self) { self = .array(v) }
        else { self = .object(try c.decode([String: AnyJSON].self)) }
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
}
