import Foundation
import Testing

/// Bytes through the SSH front under flow control: a client that reads its output
/// slowly (the server's send window runs out and must be waited for) or trickles its
/// input, next to a fast one. Output, stdin and exit status must arrive intact either
/// way, for in-process commands (config:import / config:export) and for the git
/// programs the front spawns.
@Suite("SSH front under a slow client", .serialized)
struct SSHSlowClientTests {
    /// A pipe stage that holds its input for `hold` seconds (so the channel's window
    /// fills up and stays empty), then passes `chunk` bytes every `pause` seconds.
    static let throttle = """
        import os, sys, time
        chunk, pause, hold = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
        time.sleep(hold)
        while True:
            data = os.read(0, chunk)
            if not data: break
            while data: data = data[os.write(1, data):]
            time.sleep(pause)
        """

    /// 1,000 variables of 1,024 hex characters: just under config:import's 1 MiB limit.
    static func envFile(prefix: String) -> (text: String, lines: [String]) {
        let lines = (0..<1000).map { i in
            "\(prefix)\(String(format: "%04d", i))=" + randomData(512).map { String(format: "%02x", $0) }.joined()
        }
        return (lines.joined(separator: "\n") + "\n", lines)
    }

    @Test func inProcessCommandsGetStdinAndGiveOutputAndStatusIntactSlowOrFast() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let dir = try temporaryDirectory("slow")
        try Self.throttle.write(toFile: dir + "/throttle.py", atomically: true, encoding: .utf8)
        let ssh = (["/usr/bin/ssh"] + server.sshOptions(key: alice.key) + ["127.0.0.1"]).map { "'\($0)'" }.joined(separator: " ")

        // Four imports of about 1 MB each: two sent at once, two trickled in 16 KiB pieces.
        var expected: [String] = []
        for (index, prefix) in ["A", "B", "C", "D"].enumerated() {
            let env = Self.envFile(prefix: prefix)
            expected += env.lines
            try env.text.write(toFile: dir + "/\(prefix).env", atomically: true, encoding: .utf8)
            let result = index % 2 == 0
                ? try server.ssh(alice.key, ["config:import", "web", "--no-restart"], stdin: env.text)
                : try run("/bin/bash", ["-c", "set -o pipefail; python3 \(dir)/throttle.py 16384 0.002 0 < \(dir)/\(prefix).env | \(ssh) config:import web --no-restart"])
            #expect(result.status == 0, "import \(prefix): \(result.err)")
        }
        // envfile: KEY="value" lines, sorted by key; hex values need no escapes.
        let text = expected.map { line -> String in
            let equals = line.firstIndex(of: "=")!
            return "\(line[..<equals])=\"\(line[line.index(after: equals)...])\""
        }.sorted().joined(separator: "\n") + "\n"
        #expect(text.utf8.count > 4_000_000)

        // About 4 MB of output: twice the OpenSSH client's channel window.
        let fast = try server.ssh(alice.key, "config:export", "web", "--format", "envfile")
        #expect(fast.status == 0, "\(fast.err)")
        // Compared as a Bool: a failed #expect on the strings would print megabytes.
        let fastIntact = fast.out == text
        #expect(fastIntact, "fast: \(fast.out.utf8.count) bytes, expected \(text.utf8.count)")
        let slow = try run("/bin/bash", ["-c", "set -o pipefail; \(ssh) config:export web --format envfile | python3 \(dir)/throttle.py 32768 0.002 1"])
        #expect(slow.status == 0, "\(slow.err)")
        let slowIntact = slow.out == text
        #expect(slowIntact, "slow: \(slow.out.utf8.count) bytes, expected \(text.utf8.count)")

        // A non-zero status after a trickled stdin: 1.5 MB is past the limit, nothing changes.
        let tooBig = Self.envFile(prefix: "E").text + Self.envFile(prefix: "F").text.prefix(500_000)
        try tooBig.write(toFile: dir + "/big.env", atomically: true, encoding: .utf8)
        let refused = try run("/bin/bash", ["-c", "python3 \(dir)/throttle.py 16384 0.002 0 < \(dir)/big.env | \(ssh) config:import web --no-restart"])
        #expect(refused.status == 1 && refused.err.hasPrefix("error: the env file is larger than 1048576 bytes"), "\(refused.status) \(refused.err)")
        let unchanged = try server.ssh(alice.key, "config:export", "web", "--format", "envfile").out == text
        #expect(unchanged)
    }

    @Test func gitPushAndCloneArriveIntactThroughASlowClient() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        var files: [String: Data] = [:]
        for i in 0..<3 { files["blob\(i).bin"] = randomData(2 * 1024 * 1024) }
        let repo = try makeRepository(files)
        let head = try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines)
        let dir = try temporaryDirectory("slow")
        try Self.throttle.write(toFile: dir + "/throttle.py", atomically: true, encoding: .utf8)
        // git's ssh with both of its streams through the throttle: pack data trickles
        // in, and what the server sends is read slowly after a pause.
        let wrapper = dir + "/slow-ssh"
        try """
            #!/bin/bash
            set -o pipefail
            # stdin through a process substitution: when ssh ends, so does this script (a
            # pipeline's first stage would wait in its read of git's pipe, and git for it).
            /usr/bin/ssh "$@" < <(python3 \(dir)/throttle.py 16384 0.002 0) | python3 \(dir)/throttle.py 16384 0.002 1
            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        var slowEnvironment = server.gitEnvironment(key: alice.key)
        slowEnvironment["GIT_SSH_COMMAND"] = slowEnvironment["GIT_SSH_COMMAND"]!.replacingOccurrences(of: "'ssh'", with: "'\(wrapper)'")

        for (name, environment) in [("fast", server.gitEnvironment(key: alice.key)), ("slow", slowEnvironment)] {
            // Not the deploy branch: this is about transport, not builds.
            let push = try run("/usr/bin/git", ["-C", repo, "push", "-q", server.url(name), "main:blobs"], environment: environment)
            #expect(push.status == 0, "\(name) push: \(push.err)")
            #expect(try run("/usr/bin/git", ["--git-dir", server.slipway.dataDir + "/repos/\(name).git", "fsck", "--full"]).status == 0)
            let clone = try temporaryDirectory("clone") + "/\(name)"
            let cloned = try run("/usr/bin/git", ["clone", "-q", "-b", "blobs", server.url(name), clone], environment: environment)
            #expect(cloned.status == 0, "\(name) clone: \(cloned.err)")
            #expect(try run("/usr/bin/git", ["-C", clone, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines) == head)
            #expect(try run("/usr/bin/diff", ["-r", "-x", ".git", repo, clone]).status == 0)
        }
        // A refused push over the slow client still ends with git's failure, not a hang.
        let refused = try run("/usr/bin/git", ["-C", repo, "push", "-q", server.url("Bad_Name"), "main:blobs"], environment: slowEnvironment)
        #expect(refused.status != 0 && refused.err.contains("invalid app name"), "\(refused.err)")
    }
}
