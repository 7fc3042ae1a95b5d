import Foundation
import Testing

/// storage:* and ssh-keys:* as a Dokku user types them, over the real OpenSSH client.
@Suite("Dokku's storage and ssh-keys grammar end to end", .serialized)
struct DokkuStorageEndToEndTests {
    /// A script written for Dokku (named entry, --container-dir, JSON parsed by a
    /// script, the name piped into storage:destroy) runs unchanged.
    @Test func aDokkuStorageScriptRunsUnchanged() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let bob = try TestUser.register("bob", on: server.slipway)
        let dokku = "ssh " + server.sshOptions(key: bob.key).map { "'\($0)'" }.joined(separator: " ") + " 127.0.0.1"
        let script = """
            set -e
            \(dokku) apps:create web
            \(dokku) storage:create web-uploads
            \(dokku) storage:mount web web-uploads --container-dir /app/uploads
            \(dokku) storage:mount web web-uploads --container-dir /app/uploads --phase deploy --volume-readonly
            \(dokku) storage:list web --format json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[0]["entry_name"], m[0]["container_path"], m[0]["volume_options"], len(m))'
            \(dokku) storage:unmount web web-uploads
            echo web-uploads | \(dokku) storage:destroy web-uploads
            """
        let result = try run("/bin/sh", ["-c", script])
        #expect(result.status == 0, "\(result.out) \(result.err)")
        #expect(result.out.contains("web-uploads /app/uploads ro 1"), "\(result.out)")
        #expect(result.err.contains("To proceed, type \"web-uploads\""), "\(result.err)")
        #expect(!FileManager.default.fileExists(atPath: server.slipway.dataDir + "/storage/web-uploads"))
        // Without the name on stdin nothing is destroyed, and the error says how to go on.
        #expect(try server.ssh(bob.key, "storage:create", "keep").status == 0)
        let refused = try server.ssh(bob.key, "storage:destroy", "keep")
        #expect(refused.status == 1 && refused.err.contains("error: confirmation did not match") && refused.err.contains("--force"), "\(refused.err)")
        #expect(try server.ssh(bob.key, "storage:list").out.contains("keep"))
        #expect(try server.ssh(bob.key, "storage:destroy", "keep", "--force").status == 0)
    }

    /// ATTACK: eve, a tenant, uses the named-entry form for a host path and for bob's
    /// storage, and a bind option that would relabel or re-share the directory.
    /// EXPECTED: each refused with `error:` saying why; her app has no mount.
    @Test func theNamedEntryFormIsNoWayOutForATenant() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let bob = try TestUser.register("bob", on: server.slipway), eve = try TestUser.register("eve", on: server.slipway)
        #expect(try server.ssh(bob.key, "storage:create", "bob-data").status == 0)
        #expect(try server.ssh(eve.key, "apps:create", "evil").status == 0)
        for (argv, why) in [(["evil", "/etc", "--container-dir", "/host-etc"], "admin"),
                            (["evil", "bob-data", "--container-dir", "/loot"], "belongs to another user"),
                            (["evil", "mine", "--container-dir", "/data", "--volume-options", "shared"], "not supported")] {
            let result = try server.ssh(eve.key, ["storage:mount"] + argv)
            #expect(result.status == 1 && result.err.hasPrefix("error: ") && result.err.contains(why), "\(argv): \(result.err)")
        }
        #expect(try server.ssh(eve.key, "storage:list", "evil", "--format", "json").out.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
    }

    /// An admin removes a key by its fingerprint alone; the key stops logging in, and
    /// a key file path over SSH is refused with the stdin hint.
    @Test func sshKeysByFingerprintAndOnStdinOnly() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let bob = try TestUser.register("bob", on: server.slipway)
        let listed = try server.ssh(alice.key, "ssh-keys:list", "bob")
        #expect(listed.status == 0 && !listed.out.contains("FINGERPRINT") && listed.out.hasPrefix("SHA256:"), "\(listed.out)")
        let fingerprint = String(listed.out.split(separator: " ")[0])
        let file = try server.ssh(alice.key, "ssh-keys:add", "carol", "/etc/ssh/ssh_host_ed25519_key.pub")
        #expect(file.status == 1 && file.err.contains("stdin only") && file.err.contains("< ~/.ssh/"), "\(file.err)")
        let removed = try server.ssh(alice.key, "ssh-keys:remove", "--fingerprint", fingerprint)
        #expect(removed.status == 0 && removed.out.contains("removed the key from bob"), "\(removed.err)")
        #expect(try server.ssh(bob.key, "whoami").status != 0)
    }
}
