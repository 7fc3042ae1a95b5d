import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Stored output over real ssh, git, podman and nginx: what a pusher saw is there
/// afterwards (`releases:output`, `builds:output`), a detached run's output outlives
/// its container (`run:logs`), readers see it, strangers see no app, and only the
/// last `output_records_to_keep` stay.
@Suite("Stored output end to end", .serialized)
struct StoredOutputEndToEndTests {
    let engine = DockerEngine.locate(configured: nil)

    func start(extraConfig: String = "") throws -> (TestServer, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer(slipway: try Slipway(extraConfig: extraConfig))
        let alice = try TestUser.register("alice", admin: false, on: server.slipway)
        return (server, alice)
    }

    /// The lines git shows from the server (`remote: ...`), as the server wrote them.
    static func remoteLines(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("remote: ") else { return nil }
            let text = line.dropFirst("remote: ".count).trimmingCharacters(in: .whitespaces)
            return text.isEmpty ? nil : text
        }
    }

    @Test func aFailedHealthCheckIsStoredWholeAndReadersSeeIt() async throws {
        let (server, alice) = try start()
        let repo = try makeRepository(DeployTests.appFiles("v1"))
        #expect(try server.git(alice.key, ["push", server.url("web"), "main"], in: repo).status == 0)

        // v2 prints a line and never listens: its check fails, with that line in the error.
        let checks = #"{"healthchecks": {"web": [{"path": "/", "attempts": 2, "wait": 1, "timeout": 1}]}}"#
        try DeployTests().commit(repo, DeployTests.appFiles("v2", procfile: "web: sh -c 'echo web v2 is starting; exec sleep 1000'\n", appJSON: checks),
                                 message: "never listens \(UUID())")
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status != 0 && push.err.contains("deploy of v2 failed"), "\(push.err)")
        #expect(push.err.contains("web v2 is starting"), "the failure shows the process's log lines: \(push.err)")

        let stored = try server.ssh(alice.key, "releases:output", "web", "v2")
        #expect(stored.status == 0, "\(stored.err)")
        let storedLines = Set(stored.out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        // Every line the pusher saw from the server, the build's and the error's included.
        let seen = Self.remoteLines(push.err)
        #expect(seen.count > 5, "\(push.err)")
        for line in seen {
            #expect(storedLines.contains(line), "pushed line missing from releases:output: \(line)\n--- stored:\n\(stored.out)")
        }
        #expect(stored.out.contains("-----> Building web from") && stored.out.contains("-----> Releasing web v2"), "\(stored.out)")
        #expect(stored.out.contains("error: deploy of v2 failed") && stored.out.contains("web v2 is starting"), "\(stored.out)")
        // The default is the latest release; v1's output is its own.
        #expect(try server.ssh(alice.key, "releases:output", "web").out == stored.out)
        let first = try server.ssh(alice.key, "releases:output", "web", "1")
        #expect(first.status == 0 && first.out.contains("=====> Application deployed") && !first.out.contains("v2"), "\(first.out)")
        let listing = try server.ssh(alice.key, "releases:output", "web", "--format", "json")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(listing.out.utf8)) as? [[String: Any]], "\(listing.out)")
        #expect(records.map { $0["ref"] as? String } == ["v2", "v1"] && records.map { $0["status"] as? String } == ["failed", "succeeded"], "\(listing.out)")
        // The build's own output.
        let build = try server.ssh(alice.key, "builds:output", "web")
        #expect(build.status == 0 && build.out.contains("-----> Building web from") && build.out.contains("=====> Built slipway/web:"), "\(build.out)")
        #expect(try server.ssh(alice.key, "releases:output", "web", "v9").err.contains("web has no stored output of release v9"))
        #expect(try server.ssh(alice.key, "releases:output", "web", "latest").err.contains("invalid release"))

        // A reader sees it all; a stranger gets the missing app's answer, for each command.
        let bob = try TestUser.register("bob", on: server.slipway)
        let carol = try TestUser.register("carol", on: server.slipway)
        #expect(try server.ssh(alice.key, "acl:add", "web", "bob", "read").status == 0)
        #expect(try server.ssh(bob.key, "releases:output", "web", "v2").out == stored.out)
        #expect(try server.ssh(bob.key, "builds:output", "web").out == build.out)
        for command in [["releases:output", "v2"], ["builds:output"], ["run:logs", "web.detached.x"], ["releases:output", "v2", "-t"]] {
            let stranger = try server.ssh(carol.key, [command[0], "web"] + command.dropFirst())
            let missing = try server.ssh(carol.key, [command[0], "nosuchapp"] + command.dropFirst())
            #expect(stranger.status == 1 && stranger.out.isEmpty && stranger.err.contains("app \"web\" not found"), "\(command): \(stranger.err)")
            #expect(stranger.err.replacingOccurrences(of: "\"web\"", with: "\"nosuchapp\"") == missing.err, "\(command)")
        }
    }

    /// Waits for the detached run's stored output to end; returns its record.
    func ended(_ server: TestServer, _ user: TestUser, _ name: String) throws -> [String: Any] {
        for _ in 0..<120 {
            let shown = try server.ssh(user.key, "run:logs", "web", name, "--format", "json")
            if let record = try? JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any], record["status"] as? String != "running" {
                return record
            }
            usleep(250_000)
        }
        throw HarnessError("\(name) never ended")
    }

    @Test func aDetachedRunsOutputOutlivesItAndOnlyTheLastTwoStay() async throws {
        let (server, alice) = try start(extraConfig: "output_records_to_keep = 2\n")
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        #expect(try server.git(alice.key, ["push", "-q", server.url("web"), "main"], in: repo).status == 0)

        var names: [String] = []
        for n in 1...3 {
            let started = try server.ssh(alice.key, "run:detached", "web", "sh", "-c", "'echo run \(n) says hello; echo to stderr >&2; sleep 1; echo run \(n) done; exit \(n - 1)'")
            #expect(started.status == 0, "\(started.err)")
            names.append(started.out.trimmingCharacters(in: .whitespacesAndNewlines))
            let record = try ended(server, alice, names.last!)
            #expect(record["status"] as? String == (n == 1 ? "succeeded" : "failed"), "\(record)")
        }
        // The output afterwards, the container gone.
        let logs = try server.ssh(alice.key, "run:logs", "web", names[2])
        #expect(logs.status == 0 && logs.out == "run 3 says hello\nto stderr\nrun 3 done\n-----> \(names[2]) exited with status 2\n", "\(logs.out)")
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        let left = try await engine.listContainers(labels: ["org.slipway.app": "web", "org.slipway.kind": "detached", "org.slipway.instance": instance])
        #expect(left.isEmpty, "\(left.map(\.name))")
        // Exactly two kept, the newest; the oldest's text is gone with its record.
        let listing = try server.ssh(alice.key, "run:logs", "web", "--format", "json")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(listing.out.utf8)) as? [[String: Any]], "\(listing.out)")
        #expect(records.map { $0["ref"] as? String } == [names[2], names[1]], "\(listing.out)")
        let gone = try server.ssh(alice.key, "run:logs", "web", names[0])
        #expect(gone.status == 1 && gone.err.contains("no stored output of a detached run"), "\(gone.err)")
        let appDirs = try FileManager.default.contentsOfDirectory(atPath: server.slipway.dataDir + "/outputs")
        let files = try appDirs.flatMap { try FileManager.default.contentsOfDirectory(atPath: server.slipway.dataDir + "/outputs/" + $0) }
        // One build, one deploy and two runs.
        #expect(files.count == 4, "\(files)")
        // A reader reads it; -t on an ended run prints it and returns.
        let bob = try TestUser.register("bob", on: server.slipway)
        #expect(try server.ssh(alice.key, "acl:add", "web", "bob", "read").status == 0)
        #expect(try server.ssh(bob.key, "run:logs", "web", names[2], "-t").out == logs.out)
        #expect(try server.ssh(bob.key, "run:detached", "web", "true").status == 1)
        // apps:destroy takes them along.
        #expect(try server.ssh(alice.key, "--", "--force", "apps:destroy", "web").status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.slipway.dataDir + "/outputs").isEmpty)
    }
}
