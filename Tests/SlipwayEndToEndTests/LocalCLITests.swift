import Foundation
import Testing

/// The local CLI, driven as the real binary, as an admin on the host runs it.
@Suite("Local CLI end to end")
struct LocalCLITests {
    @Test func firstAdminAndKeyFromTheHost() throws {
        let slipway = try Slipway()
        let key = try generateKey(comment: "alice@laptop")
        #expect(try slipway("users:add", "alice", "--admin").status == 0)
        let added = try slipway("ssh-keys:add", "alice", "laptop", stdin: key.publicLine)
        #expect(added.status == 0, "\(added.err)")
        let keygen = try run("/usr/bin/ssh-keygen", ["-lf", key.privatePath + ".pub"]).out
        let fingerprint = String(keygen.split(separator: " ")[1])
        #expect(fingerprint.hasPrefix("SHA256:"))
        #expect(added.out.contains(keygen.trimmingCharacters(in: .whitespacesAndNewlines)))

        let listed = try slipway("ssh-keys:list", "--format", "json")
        let keys = try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]]
        #expect(keys?.count == 1)
        #expect(keys?.first?["fingerprint"] as? String == fingerprint)
        #expect(keys?.first?["user"] as? String == "alice")
        #expect(keys?.first?["name"] as? String == "laptop")

        let again = try slipway("ssh-keys:add", "alice", "other", stdin: key.publicLine)
        #expect(again.status == 1)
        #expect(again.err == "error: this key (\(fingerprint)) is already registered to alice; a key belongs to one user\n")

        // The local CLI also reads a key file path, as Dokku's ssh-keys:add does.
        let second = try generateKey("ecdsa", bits: 256)
        let fromFile = try slipway("ssh-keys:add", "alice", second.privatePath + ".pub")
        #expect(fromFile.status == 0 && fromFile.out.contains("(ECDSA)"))
    }

    @Test func configRoundTripsThroughTheProcess() throws {
        let slipway = try Slipway()
        try slipway("apps:create", "web")
        let values = ["spaces in it", "it's \"quoted\"", "a=b=c", "$HOME `x` \\ back", "ünïcødé ✓ 🚀", "-starts-with-dash"]
        for (index, value) in values.enumerated() {
            #expect(try slipway("config:set", "web", "V\(index)=\(value)").status == 0)
            #expect(try slipway("config:get", "web", "V\(index)").out == value + "\n")
        }
        let multiline = "first\nsecond\n\tthird\n"
        #expect(try slipway("config:set", "--encoded", "web", "ML=\(Data(multiline.utf8).base64EncodedString())").status == 0)
        let exported = try JSONSerialization.jsonObject(with: Data(try slipway("config:export", "web", "--format", "json").out.utf8)) as? [String: String]
        #expect(exported?["ML"] == multiline)
        for (index, value) in values.enumerated() { #expect(exported?["V\(index)"] == value) }

        // The exports format survives a real shell.
        let exports = try slipway("config:export", "web").out
        let echoed = try run("/bin/bash", ["-c", exports + "\nprintf '%s' \"$ML\""])
        #expect(echoed.out == multiline)
    }

    @Test func fiftyConcurrentWritersLoseNothing() throws {
        let slipway = try Slipway()
        try slipway("apps:create", "web")
        let failures = concurrently(50) { index in
            let result = try slipway("config:set", "web", "KEY_\(index)=value \(index)")
            return result.status == 0 ? nil : result.err
        }
        #expect(failures.isEmpty, "\(failures)")
        let keys = try slipway("config:keys", "web").out.split(separator: "\n")
        #expect(keys.count == 50)
        #expect(try slipway("config:get", "web", "KEY_17").out == "value 17\n")
    }

    @Test func badInputIsRefusedAndChangesNothing() throws {
        let slipway = try Slipway()
        try slipway("apps:create", "web")
        let before = try dump(slipway.dataDir)
        // Invalid UTF-8 can only be passed through a shell.
        let invalid = try run("/bin/sh", ["-c", "\"$0\" --data-dir \"$1\" apps:create \"$(printf 'ab\\377')\"", Slipway.binary, slipway.dataDir])
        #expect(invalid.status != 0 && invalid.err.contains("not valid UTF-8"))
        let unknown = try slipway("apps:explode", "web")
        #expect(unknown.status == 2 && unknown.err.hasPrefix("error: unknown command \"apps:explode\""))
        let flag = try slipway("apps:list", "--frobnicate")
        #expect(flag.status == 2 && flag.err.hasPrefix("error: ") && flag.err.contains("--frobnicate"))
        let emptyKey = try slipway("ssh-keys:add", "bob", "k", stdin: "")
        #expect(emptyKey.status == 1 && emptyKey.err.contains("no public key"))
        let bigKey = try slipway(["ssh-keys:add", "bob", "k"], stdin: Data(repeating: 0x41, count: 1 << 20))
        #expect(bigKey.status == 1 && bigKey.err.contains("larger than"))
        let binaryKey = try slipway(["ssh-keys:add", "bob", "k"], stdin: Data([0xff, 0xfe, 0x00, 0x41]))
        #expect(binaryKey.status == 1 && binaryKey.err.contains("not valid UTF-8"))
        let traversal = try slipway("storage:mount", "web", "data:/app/../../etc")
        #expect(traversal.status == 1 && traversal.err.contains("'..' is not allowed"))
        #expect(try dump(slipway.dataDir) == before)
    }

    @Test func dataDirComesFromTheEnvironmentAndConfigIsChecked() throws {
        let dir = try temporaryDirectory("slipway-env")
        let created = try run(Slipway.binary, ["apps:create", "envapp"], environment: ["SLIPWAY_DATA_DIR": dir])
        #expect(created.status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/slipway.db"))
        let missing = try run(Slipway.binary, ["--config", "/nonexistent/slipway.toml", "apps:list"], environment: ["SLIPWAY_DATA_DIR": dir])
        #expect(missing.status == 1 && missing.err.contains("does not exist"))
        let configFile = dir + "/bad.toml"
        try "users_can_create_app = true\n".write(toFile: configFile, atomically: true, encoding: .utf8)
        let typo = try run(Slipway.binary, ["--config", configFile, "apps:list"], environment: ["SLIPWAY_DATA_DIR": dir])
        #expect(typo.status == 1 && typo.err.contains("unknown key"))
        let asBob = try run(Slipway.binary, ["--as", "bob", "apps:list"], environment: ["SLIPWAY_DATA_DIR": dir])
        #expect(asBob.err.contains("user \"bob\" not found"))
    }

    /// The whole database as text, read with the sqlite3 CLI rather than through
    /// the binary under test.
    private func dump(_ dataDir: String) throws -> String {
        let result = try run("/usr/bin/sqlite3", [dataDir + "/slipway.db", ".dump"])
        precondition(result.status == 0, result.err)
        return result.out
    }
}
