import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Dokku's storage entry commands: storage:create --chown/--mode, storage:list-entries,
/// storage:info, storage:set, and storage:report --format json as Dokku's object.
@Suite("Storage entries: chown, mode, info, set, list-entries, report")
struct StorageEntryTests {
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

    /// Nothing changed since `before` but the audit log (refusals are recorded).
    func unchanged(_ w: TestWorld, _ before: String) throws {
        func state(_ dump: String) -> [Substring] { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } }
        let after = state(try w.dump()), was = state(before)
        #expect(after == was, "\(after.filter { !was.contains($0) })")
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func createWithChownAndModeShowsInInfoAndListEntries() throws {
        let w = try world()
        let created = try w.run(["storage:create", "uploads", "--chown", "heroku", "--mode", "770"], asUser: "bob")
        #expect(created.status == 0 && created.out.hasPrefix("-----> Storage entry uploads created\n"), "\(created.out) \(created.err)")
        #expect(created.out.contains("Setting directory mode to 0770"))
        let directory = w.core.paths.storage(try StorageName("uploads"))
        #expect(try mode(directory) == 0o770)

        let info = try w.run(["storage:info", "uploads"], asUser: "bob")
        #expect(info.status == 0, "\(info.err)")
        #expect(info.out.hasPrefix("-----> Storage entry uploads\n"), "\(info.out)")
        for line in ["       Scheduler:        docker-local", "       Host path:        \(directory)",
                     "       Chown:            heroku", "       Mode:             0770", "       Owner:            bob"] {
            #expect(info.out.contains(line + "\n"), "\(line) in \(info.out)")
        }
        let infoJSON = try w.run(["storage:info", "uploads", "--format", "json"], asUser: "bob")
        #expect(infoJSON.out.split(separator: "\n").count == 1)
        let object = try #require(try json(infoJSON.out) as? [String: Any])
        #expect(object["name"] as? String == "uploads" && object["scheduler"] as? String == "docker-local")
        #expect(object["host_path"] as? String == directory && object["chown"] as? String == "heroku" && object["mode"] as? String == "0770")
        #expect(object["schema_version"] as? Int == 1 && object["owner"] as? String == "bob")

        // Without properties, Dokku's JSON leaves the keys out.
        #expect(try w.run(["storage:create", "plain"], asUser: "bob").status == 0)
        let entries = try w.run(["storage:list-entries", "--format", "json"], asUser: "bob")
        let list = try #require(try json(entries.out) as? [[String: Any]])
        #expect(list.map { $0["name"] as? String } == ["plain", "uploads"])
        #expect(list[0]["chown"] == nil && list[0]["mode"] == nil)
        let text = try w.run(["storage:list-entries"], asUser: "bob")
        #expect(text.out == "-----> Storage entries:\n       plain\tdocker-local\t\(w.core.paths.storage(try StorageName("plain")))\n       uploads\tdocker-local\t\(directory)\n", "\(text.out)")
        // --quiet drops the header: one line per entry.
        #expect(try w.run(["--quiet", "storage:list-entries"], asUser: "bob").out.split(separator: "\n").count == 2)
        #expect(try w.run(["storage:list-entries"], asUser: "eve").out == "-----> No storage entries registered\n")
        #expect(try w.run(["storage:list-entries", "--format", "json"], asUser: "eve").out == "[]\n")
    }

    @Test func createAgainByItsOwnerSetsThePropertiesAnewAndKeepsTheData() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "data", "--chown", "2000", "--mode", "0700"], asUser: "bob").status == 0)
        let directory = w.core.paths.storage(try StorageName("data"))
        try "kept".write(toFile: directory + "/file", atomically: true, encoding: .utf8)
        let again = try w.run(["storage:create", "data", "--mode", "0750"], asUser: "bob")
        #expect(again.status == 0 && again.out.contains("already exists, leaving in place"), "\(again.err)")
        #expect(try mode(directory) == 0o750)
        #expect(FileManager.default.fileExists(atPath: directory + "/file"))
        let object = try #require(try json(try w.run(["storage:info", "data", "--format", "json"], asUser: "bob").out) as? [String: Any])
        #expect(object["chown"] == nil && object["mode"] as? String == "0750")
        // Someone else's name stays taken, and nothing of bob's changes.
        let before = try w.dump()
        let taken = try w.run(["storage:create", "data", "--mode", "0777"], asUser: "eve")
        #expect(taken.status == 1 && taken.err.contains("already exists; choose another name"), "\(taken.err)")
        #expect(try mode(directory) == 0o750)
        try unchanged(w, before)
    }

    @Test func setAndClearEachProperty() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "data"], asUser: "bob").status == 0)
        let directory = w.core.paths.storage(try StorageName("data"))
        #expect(try mode(directory) == 0o755)
        let setMode = try w.run(["storage:set", "data", "mode", "0711"], asUser: "bob")
        #expect(setMode.status == 0 && setMode.out.hasPrefix("-----> Storage entry data updated"), "\(setMode.err)")
        #expect(try mode(directory) == 0o711)
        #expect(try w.run(["storage:set", "data", "chown", "root"], asUser: "bob").status == 0)
        var object = try #require(try json(try w.run(["storage:info", "data", "--format", "json"], asUser: "bob").out) as? [String: Any])
        #expect(object["chown"] as? String == "root" && object["mode"] as? String == "0711")
        // A uid with leading zeros is stored as the number.
        #expect(try w.run(["storage:set", "data", "chown", "01000"], asUser: "bob").status == 0)
        object = try #require(try json(try w.run(["storage:info", "data", "--format", "json"], asUser: "bob").out) as? [String: Any])
        #expect(object["chown"] as? String == "1000")
        // Without a value: cleared; the directory keeps its mode.
        #expect(try w.run(["storage:set", "data", "mode"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:set", "data", "chown"], asUser: "bob").status == 0)
        object = try #require(try json(try w.run(["storage:info", "data", "--format", "json"], asUser: "bob").out) as? [String: Any])
        #expect(object["chown"] == nil && object["mode"] == nil)
        #expect(try mode(directory) == 0o711)
        let events = try w.run(["events"], asUser: "bob").out
        #expect(events.contains("set mode of storage data to 0711") && events.contains("cleared chown of storage data"), "\(events)")
    }

    /// Hostile and malformed values: each refused with `error:` saying why, nothing changes.
    @Test func badValuesAreRefusedAndChangeNothing() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "data"], asUser: "bob").status == 0)
        let directory = w.core.paths.storage(try StorageName("data"))
        let before = try w.dump()
        for (argv, why) in [
            (["storage:create", "new", "--chown=-1"], "Unsupported chown permissions"),
            (["storage:create", "new", "--chown", "65536"], "outside the ids"),
            (["storage:create", "new", "--chown", "4294967296"], "outside the ids"),
            (["storage:create", "new", "--chown", "1000:1000"], "Unsupported chown permissions"),
            (["storage:create", "new", "--chown", " 1000"], "Unsupported chown permissions"),
            (["storage:create", "new", "--chown", "１０００"], "Unsupported chown permissions"),
            (["storage:create", "new", "--chown", "Root"], "Unsupported chown permissions"),
            (["storage:create", "new", "--mode", "777 "], "3 or 4 digit octal"),
            (["storage:create", "new", "--mode", "0o777"], "3 or 4 digit octal"),
            (["storage:create", "new", "--mode", "888"], "3 or 4 digit octal"),
            (["storage:create", "new", "--mode", "07777"], "3 or 4 digit octal"),
            (["storage:create", "new", "--mode", "4755"], "setuid, setgid or sticky"),
            (["storage:create", "new", "--mode", "2770"], "setuid, setgid or sticky"),
            (["storage:create", "new", "--mode", "1777"], "setuid, setgid or sticky"),
            (["storage:create", "new", "--scheduler", "k3s"], "docker-local"),
            (["storage:create", "new", "--size", "1Gi"], "k3s option"),
            (["storage:create", "new", "--reclaim-policy", "Retain"], "always deletes"),
            (["storage:create", "Bad_Name"], "invalid storage name"),
            (["storage:set", "data", "mode", "6755"], "setuid, setgid or sticky"),
            (["storage:set", "data", "chown", "nobody"], "Unsupported chown permissions"),
            (["storage:set", "data", "size", "1Gi"], "k3s property"),
            (["storage:set", "data", "owner", "eve"], "Invalid property specified, valid properties include: chown, mode"),
        ] {
            let result = try w.run(argv, asUser: "bob")
            #expect(result.status != 0 && result.err.hasPrefix("error: ") && result.err.contains(why), "\(argv): \(result.err)")
        }
        try unchanged(w, before)
        #expect(!FileManager.default.fileExists(atPath: w.core.paths.storage(try StorageName("new"))))
        #expect(try mode(directory) == 0o755)
    }

    /// ATTACK: eve reads and changes bob's storage through the new commands, and names
    /// a host path as an entry. EXPECTED: bob's storage looks missing to her (as to
    /// storage:destroy), a host path is for admins and refused for them too, saying
    /// why; nothing changes.
    @Test func aTenantSeesAndChangesOnlyHerOwnStorage() throws {
        let w = try world()
        #expect(try w.run(["storage:create", "bob-data", "--mode", "0700"], asUser: "bob").status == 0)
        #expect(w.run(["storage:create", "admin-data"]).status == 0)
        let directory = w.core.paths.storage(try StorageName("bob-data"))
        let before = try w.dump()
        for argv in [["storage:info", "bob-data"], ["storage:info", "bob-data", "--format", "json"],
                     ["storage:set", "bob-data", "mode", "0777"], ["storage:set", "bob-data", "chown", "false"],
                     ["storage:set", "admin-data", "mode", "0777"], ["storage:info", "admin-data"]] {
            let result = try w.run(argv, asUser: "eve")
            let missing = try w.run(argv.map { $0.hasSuffix("-data") ? "no-such" : $0 }, asUser: "eve")
            #expect(result.status == 1 && result.err.contains("not found"), "\(argv): \(result.err)")
            #expect(result.err.replacingOccurrences(of: argv[1], with: "X") == missing.err.replacingOccurrences(of: "no-such", with: "X"))
        }
        let listed = try w.run(["storage:list-entries", "--format", "json"], asUser: "eve")
        #expect(listed.out == "[]\n", "\(listed.out)")
        // A host path as an entry: admins only, and refused for them too, saying why.
        let host = try w.run(["storage:create", "etc", "/etc", "--chown", "root"], asUser: "eve")
        #expect(host.status == 1 && host.err.contains("only server admins"), "\(host.err)")
        let admin = try w.run(["storage:create", "etc", "/etc"], asUser: "alice")
        #expect(admin.status == 1 && admin.err.contains("storage:mount <app> /etc:/container/path"), "\(admin.err)")
        try unchanged(w, before)
        #expect(try mode(directory) == 0o700)
        // Admins see and manage everyone's.
        #expect(try w.run(["storage:set", "bob-data", "mode", "0750"], asUser: "alice").status == 0)
        let all = try #require(try json(try w.run(["storage:list-entries", "--format", "json"], asUser: "alice").out) as? [[String: Any]])
        #expect(all.compactMap { $0["name"] as? String } == ["admin-data", "bob-data"])
    }

    /// At each start the directory is given to the uid its chown names in the app's
    /// user namespace (or the image's user), and its mode is applied; `false` leaves
    /// the owner alone; a read-only mount is left as it is.
    @Test func bindsApplyTheEntrysOwnerAndMode() throws {
        let w = try world()
        let sandbox = try TenantSandbox(appID: 7, instance: "test")
        let base = sandbox.idRange.hostBase
        func bind(_ name: String, readonly: Bool = false, imageUser: String = "1000") throws -> stat {
            let storage = try StorageName(name)
            let id = try #require(try w.core.store.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM storages WHERE name = ?", arguments: [name]) })
            let mount = ReleaseSnapshot.MountSnapshot(hostDirectory: w.core.paths.storage(storage), containerPath: "/data", readonly: readonly,
                                                      phases: ["deploy", "run"], managed: true, storageId: id)
            let binds = try ImageUser.binds([mount], properties: try w.core.storage.properties(of: [mount]), image: "img", imageUser: imageUser,
                                            sandbox: sandbox, containers: Containers(engine: w.core.engine, instance: "test"))
            #expect(binds == ["\(mount.hostDirectory):/data\(readonly ? ":ro" : "")"])
            var info = stat()
            #expect(lstat(mount.hostDirectory, &info) == 0)
            return info
        }
        #expect(try w.run(["storage:create", "fixed", "--chown", "paketo", "--mode", "0770"], asUser: "bob").status == 0)
        var info = try bind("fixed")
        #expect(info.st_uid == base + 2000 && info.st_gid == base + 2000 && info.st_mode & 0o7777 == 0o770)
        // The app (root inside) changed the mode: the next start applies the entry's again.
        chmod(w.core.paths.storage(try StorageName("fixed")), 0o777)
        #expect(try w.run(["storage:set", "fixed", "chown", "root"], asUser: "bob").status == 0)
        info = try bind("fixed")
        #expect(info.st_uid == base && info.st_mode & 0o7777 == 0o770)

        #expect(try w.run(["storage:create", "image-user"], asUser: "bob").status == 0)
        info = try bind("image-user")
        #expect(info.st_uid == base + 1000 && info.st_mode & 0o7777 == 0o755)

        #expect(try w.run(["storage:create", "left-alone", "--chown", "false", "--mode", "0777"], asUser: "bob").status == 0)
        info = try bind("left-alone")
        #expect(info.st_uid == getuid() && info.st_mode & 0o7777 == 0o777)

        #expect(try w.run(["storage:create", "read-only", "--chown", "1000", "--mode", "0700"], asUser: "bob").status == 0)
        chmod(w.core.paths.storage(try StorageName("read-only")), 0o755)
        info = try bind("read-only", readonly: true)
        #expect(info.st_uid == getuid() && info.st_mode & 0o7777 == 0o755)
    }

    @Test func reportIsDokkusObject() throws {
        let w = try world()
        #expect(try w.run(["storage:mount", "web", "uploads", "--container-dir", "/app/uploads"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:mount", "web", "logs", "--container-dir", "/app/logs", "--phase", "run", "--volume-readonly"], asUser: "bob").status == 0)
        #expect(w.run(["storage:mount", "web", "/srv/shared", "--container-dir", "/shared", "--phase", "deploy"]).status == 0)
        let (uploads, logs) = (w.core.paths.storage(try StorageName("uploads")), w.core.paths.storage(try StorageName("logs")))
        let report = try w.run(["storage:report", "web", "--format", "json"], asUser: "bob")
        #expect(report.status == 0 && report.out.split(separator: "\n").count == 1, "\(report.err)")
        let object = try #require(try json(report.out) as? [String: String])
        #expect(object["build-mounts"] == "")
        #expect(object["deploy-mounts"] == "-v \(uploads):/app/uploads -v /srv/shared:/shared")
        #expect(object["run-mounts"] == "-v \(logs):/app/logs:ro -v \(uploads):/app/uploads")
        #expect(object["storage-run-mounts"] == object["run-mounts"])
        // Mounts in container-path order: /app/logs, /app/uploads, /shared.
        #expect(object["attachment.1.entry-name"] == "logs" && object["attachment.1.readonly"] == "true")
        #expect(object["attachment.1.phases"] == "run" && object["attachment.1.host-path"] == logs)
        #expect(object["attachment.2.container-path"] == "/app/uploads" && object["attachment.2.phases"] == "deploy,run")
        #expect(object["attachment.2.process-type"] == "_default_" && object["attachment.2.owner"] == "bob")
        #expect(object["attachment.3.entry-name"] == "" && object["attachment.3.host-path"] == "/srv/shared")
        #expect(object["storage-attachment.3.host-path"] == "/srv/shared")
        let text = try w.run(["storage:report", "web"], asUser: "bob")
        #expect(text.out.hasPrefix("=====> web storage information\n"), "\(text.out)")
        // Dokku's layout: labels padded to the longest flag's length (--storage-attachment.1.container-path).
        func line(_ label: String, _ value: String) -> String {
            "       " + label.padding(toLength: "--storage-attachment.1.container-path".count, withPad: " ", startingAt: 0) + value + "\n"
        }
        #expect(text.out.contains(line("Storage attachment 1 entry name:", "logs")), "\(text.out)")
        #expect(text.out.contains(line("Storage deploy mounts:", "-v \(uploads):/app/uploads -v /srv/shared:/shared")), "\(text.out)")
        #expect(text.out.contains(line("Storage build mounts:", "")), "\(text.out)")
        // A reader of the app sees it; another tenant does not.
        #expect(try w.run(["storage:report", "web", "--format", "json"], asUser: "eve").err.contains("not found"))
    }
}
