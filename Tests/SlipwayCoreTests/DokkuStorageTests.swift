import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// storage:* and ssh-keys:* in Dokku's grammar, next to Slipway's short form.
@Suite("Dokku's storage and ssh-keys grammar")
struct DokkuStorageTests {
    /// alice (admin), bob and eve (users); bob owns `web`, eve owns `evil`.
    func world() throws -> TestWorld {
        let w = try TestWorld()
        for (name, admin) in [("alice", true), ("bob", false), ("eve", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "evil"], asUser: "eve").status == 0)
        return w
    }

    /// Nothing changed since `before` but the audit log (refusals are recorded); else the tables that did.
    func unchanged(_ w: TestWorld, _ before: String) throws {
        func state(_ dump: String) -> [Substring] { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } }
        let after = state(try w.dump()), was = state(before)
        #expect(after == was, "\(after.filter { !was.contains($0) })")
    }

    func mounts(_ w: TestWorld, _ app: String, as user: String) throws -> [[String: AnyJSON]] {
        let list = try w.run(["storage:list", app, "--format", "json"], asUser: user)
        #expect(list.status == 0, "\(list.err)")
        return try JSONDecoder().decode([[String: AnyJSON]].self, from: Data(list.out.utf8))
    }

    @Test func mountWithContainerDirListsDokkusKeysAndUpdatesInPlace() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "uploads"], asUser: "bob").status == 0)
        let mounted = try w.run(["storage:mount", "web", "uploads", "--container-dir", "/app/uploads"], asUser: "bob")
        #expect(mounted.status == 0 && mounted.out.contains("Mounted uploads at /app/uploads"), "\(mounted.err)")
        var list = try mounts(w, "web", as: "bob")
        #expect(list.count == 1)
        #expect(list.first?["entry_name"]?.string == "uploads")
        #expect(list.first?["container_path"]?.string == "/app/uploads")
        #expect(list.first?["host_path"]?.string == w.core.paths.storage(try StorageName("uploads")))
        #expect(list.first?["volume_options"]?.string == "")
        // The same entry at the same path again: its phases and mode change, no second mount.
        let again = try w.run(["storage:mount", "web", "uploads", "--container-dir", "/app/uploads", "--phase", "run", "--volume-readonly"], asUser: "bob")
        #expect(again.status == 0 && again.out.contains("Updated the mount of uploads"), "\(again.err)")
        list = try mounts(w, "web", as: "bob")
        #expect(list.count == 1 && list.first?["volume_options"]?.string == "ro")
        guard case .array(let phases)? = list.first?["phases"] else { Issue.record("no phases: \(list)"); return }
        #expect(phases.map(\.string) == ["run"])
        let back = try w.run(["storage:mount", "web", "uploads", "--container-dir", "/app/uploads", "--volume-options", "rw"], asUser: "bob")
        #expect(back.status == 0, "\(back.err)")
        #expect(try mounts(w, "web", as: "bob").first?["volume_options"]?.string == "")
        // Another entry at a path already used: Dokku's words, and nothing changes.
        let before = try w.dump()
        let clash = try w.run(["storage:mount", "web", "other", "--container-dir", "/app/uploads"], asUser: "bob")
        #expect(clash.status == 1 && clash.err.hasPrefix("error: Mount path already exists"), "\(clash.err)")
        try unchanged(w, before)
    }

    @Test func refusedOptionsSayWhyAndChangeNothing() throws {
        let w = try world()
        let before = try w.dump()
        for (argv, expected) in [
            (["storage:mount", "web", "data", "--container-dir", "/data", "--volume-options", "z"], "not supported"),
            (["storage:mount", "web", "data", "--container-dir", "/data", "--process-type", "web"], "every process type"),
            (["storage:mount", "web", "data:/x", "--container-dir", "/data"], "invalid storage name"),
            (["storage:mount", "web", "data", "--container-dir", "relative"], "must be absolute"),
            (["storage:mount", "web", "data", "--container-dir", "/proc/x"], "kernel filesystems"),
        ] {
            let result = try w.run(argv, asUser: "bob")
            #expect(result.status != 0 && result.err.hasPrefix("error: ") && result.err.contains(expected), "\(argv): \(result.err)")
        }
        try unchanged(w, before)
    }

    /// ATTACK: eve uses the named-entry form to reach a host path and bob's storage.
    /// EXPECTED: both refused as in the short form; nothing changes.
    @Test func theNamedEntryFormOpensNoWayOut() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "bob-data"], asUser: "bob").status == 0)
        let before = try w.dump()
        let host = try w.run(["storage:mount", "evil", "/etc", "--container-dir", "/host-etc"], asUser: "eve")
        #expect(host.status == 1 && host.err.contains("admin"), "\(host.err)")
        let steal = try w.run(["storage:mount", "evil", "bob-data", "--container-dir", "/loot"], asUser: "eve")
        #expect(steal.status == 1 && steal.err.contains("belongs to another user"), "\(steal.err)")
        let unmount = try w.run(["storage:unmount", "web", "bob-data"], asUser: "eve")
        #expect(unmount.status == 1 && unmount.err.contains("not found"), "\(unmount.err)")
        let destroy = try w.run(["storage:destroy", "bob-data", "--force"], asUser: "eve")
        #expect(destroy.status == 1 && destroy.err.contains("not found"), "\(destroy.err)")
        try unchanged(w, before)
    }

    @Test func unmountByEntryNameAsksForThePathOnlyWhenItIsAmbiguous() throws {
        let w = try world()
        for path in ["/a", "/b"] {
            #expect(try w.run(["storage:mount", "web", "data", "--container-dir", path], asUser: "bob").status == 0)
        }
        let ambiguous = try w.run(["storage:unmount", "web", "data"], asUser: "bob")
        #expect(ambiguous.status != 0 && ambiguous.err.contains("--container-dir"), "\(ambiguous.err)")
        #expect(try w.run(["storage:unmount", "web", "data", "--container-dir", "/a"], asUser: "bob").status == 0)
        #expect(try mounts(w, "web", as: "bob").map { $0["container_path"]?.string } == ["/b"])
        #expect(try w.run(["storage:unmount", "web", "data"], asUser: "bob").status == 0)
        #expect(try mounts(w, "web", as: "bob").isEmpty)
        let gone = try w.run(["storage:unmount", "web", "data"], asUser: "bob")
        #expect(gone.status == 1 && gone.err.contains("has no mount of storage data"), "\(gone.err)")
    }

    @Test func storageDestroyAsksForTheNameAgain() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "scratch"], asUser: "bob").status == 0)
        let directory = w.core.paths.storage(try StorageName("scratch"))
        for stdin in ["wrong\n", "", nil] as [String?] {
            let refused = try w.run(["storage:destroy", "scratch"], asUser: "bob", stdin: stdin)
            #expect(refused.status == 1 && refused.err.contains("confirmation did not match"), "\(refused.err)")
        }
        #expect(FileManager.default.fileExists(atPath: directory))
        let typed = try w.run(["storage:destroy", "scratch"], asUser: "bob", stdin: "scratch\n")
        #expect(typed.status == 0 && typed.err.contains("To proceed, type \"scratch\""), "\(typed.err)")
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(try w.run(["storage:create", "scratch2"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:destroy", "scratch2", "--force"], asUser: "bob", stdin: nil).status == 0)
    }

    @Test func sshKeysRemoveByFingerprintAloneAndListOneUserWithoutHeader() throws {
        let w = try TestWorld()
        let key = try makeKey("ed25519", comment: "bob@laptop")
        #expect(w.run(["ssh-keys:add", "bob", "laptop"], stdin: key.line).status == 0)
        let fingerprint = String(try runTool("/usr/bin/ssh-keygen", ["-lf", key.path]).out.split(separator: " ")[1])
        let list = w.run(["ssh-keys:list", "bob"])
        #expect(list.out == "\(fingerprint) NAME=\"bob\" KEY_NAME=\"laptop\"\n", "\(list.out)")
        #expect(w.run(["ssh-keys:list"]).out.contains("FINGERPRINT"))
        let unknown = w.run(["ssh-keys:remove", "--fingerprint", "SHA256:nope"])
        #expect(unknown.status == 1 && unknown.err.contains("no user has a key with this fingerprint"), "\(unknown.err)")
        let alone = w.run(["ssh-keys:remove", "bob"])
        #expect(alone.status != 0 && alone.err.contains("--fingerprint"), "\(alone.err)")
        let removed = w.run(["ssh-keys:remove", "--fingerprint", fingerprint])
        #expect(removed.status == 0 && removed.out.contains("removed the key from bob"), "\(removed.err)")
        #expect(try w.core.users.owner(ofKey: try PublicKey(line: key.line)) == nil)
        #expect(w.run(["ssh-keys:list", "bob"]).out.isEmpty)
    }
}
