import Foundation
import Testing

/// Dokku's storage entry commands over the real OpenSSH client, checked from inside a
/// real container of a deployed app.
@Suite("Storage entries end to end", .serialized)
struct StorageEntryEndToEndTests {
    /// storage:create --chown/--mode, mounted and deployed: a container of the app sees
    /// the directory owned by that uid with that mode; storage:set changes both for the
    /// next container. A tenant who does not own the storage can neither read nor change
    /// it, and cannot name a host path as an entry.
    @Test func theOwnerAndModeOfAnEntryAreWhatTheContainerSees() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        _ = try BuilderImage.bootstrap.get()
        let bob = try TestUser.register("bob", on: server.slipway), eve = try TestUser.register("eve", on: server.slipway)

        let created = try server.ssh(bob.key, "storage:create", "media", "--chown", "2000", "--mode", "0770")
        #expect(created.status == 0 && created.out.contains("-----> Storage entry media created"), "\(created.out) \(created.err)")
        #expect(try server.ssh(bob.key, "apps:create", "web").status == 0)
        let mounted = try server.ssh(bob.key, "storage:mount", "web", "media", "--container-dir", "/data")
        #expect(mounted.status == 0, "\(mounted.err)")
        let repo = try makeRepository(["Procfile": Data("web: exec python3 -m http.server $PORT\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let push = try server.git(bob.key, ["push", "-q", server.url("web"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")

        // ssh joins the words with spaces; the server splits them again, quotes kept.
        let stat = ["run", "web", "stat", "-c", "'%u:%g %a'", "/data"]
        let seen = try server.ssh(bob.key, stat)
        #expect(seen.status == 0 && seen.out == "2000:2000 770\n", "\(seen.out) \(seen.err)")

        #expect(try server.ssh(bob.key, "storage:set", "media", "chown", "root").status == 0)
        #expect(try server.ssh(bob.key, "storage:set", "media", "mode", "0750").status == 0)
        let again = try server.ssh(bob.key, stat)
        #expect(again.status == 0 && again.out == "0:0 750\n", "\(again.out) \(again.err)")

        let info = try server.ssh(bob.key, "storage:info", "media", "--format", "json")
        let entry = try JSONSerialization.jsonObject(with: Data(info.out.utf8)) as? [String: Any]
        #expect(entry?["chown"] as? String == "root" && entry?["mode"] as? String == "0750", "\(info.out)")
        #expect(entry?["mounted_by"] as? [String] == ["web"], "\(info.out)")
        let report = try server.ssh(bob.key, "storage:report", "web", "--format", "json")
        let object = try JSONSerialization.jsonObject(with: Data(report.out.utf8)) as? [String: String]
        #expect(object?["attachment.1.entry-name"] == "media" && object?["deploy-mounts"]?.hasSuffix("/storage/media:/data") == true, "\(report.out)")

        // eve: bob's storage is not hers to see or change; a host path is not an entry.
        for argv in [["storage:info", "media"], ["storage:set", "media", "mode", "0777"], ["storage:set", "media", "chown", "false"]] {
            let result = try server.ssh(eve.key, argv)
            #expect(result.status == 1 && result.err.hasPrefix("error: storage \"media\" not found"), "\(argv): \(result.err)")
        }
        let host = try server.ssh(eve.key, "storage:create", "etc", "/etc", "--chown", "root")
        #expect(host.status == 1 && host.err.contains("only server admins"), "\(host.err)")
        #expect(try server.ssh(eve.key, "storage:list-entries", "--format", "json").out == "[]\n")
        let unchanged = try server.ssh(bob.key, stat)
        #expect(unchanged.out == "0:0 750\n", "\(unchanged.out) \(unchanged.err)")
    }
}
