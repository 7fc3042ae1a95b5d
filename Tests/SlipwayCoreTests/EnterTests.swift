import Foundation
import Logging
import SlipwayHost
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// `enter` on the fake engine, through the real command runner: which container an
/// exec reaches, who may start one, and what a hostile process argument gets.
@Suite("enter: a command inside a running process")
struct EnterTests {
    let engine = FakeEngine()
    let core: Core
    let runner: CommandRunner
    /// The ids of the containers `setUp` made, by a short name.
    var ids: [String: String] = [:]

    /// bob owns `web` (web.1, web.2, worker.1 running; web.3 stopped); carol owns
    /// `other` (web.1), `jobs` (clock.1, worker.1) and `cron` (clock.1); dave reads
    /// web; erin has nothing. Next to them: a run container
    /// of web and a process labelled web of another server sharing the engine.
    init() throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        core = try Core(settings: settings, engine: engine, probe: RefusingProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"),
                        processes: LocalProcesses())
        runner = CommandRunner(core: core, logger: Logger(label: "test"))
        for name in ["bob", "carol", "dave", "erin"] { #expect(try run(["users:add", name]).status == 0) }
        #expect(try run(["apps:create", "web"], as: "bob").status == 0)
        for app in ["other", "jobs", "cron"] { #expect(try run(["apps:create", app], as: "carol").status == 0) }
        #expect(try run(["acl:add", "web", "dave", "read"], as: "bob").status == 0)
        let instance = try core.paths.instanceID(), engine = self.engine
        @Sendable func container(_ name: String, app: String, kind: ContainerKind, type: String, index: String, instance: String = instance,
                       running: Bool = true) async throws -> String {
            var labels = ContainerLabels(app: app, kind: kind, instance: instance)
            (labels.type, labels.index) = (type, index)
            var spec = ContainerSpec(image: "slipway/\(app):1", command: ["serve"])
            spec.name = name
            spec.labels = labels.labels
            let id = try await engine.createContainer(spec)
            if running { try await engine.startContainer(id) }
            return id
        }
        let made = try waitFor {
            [
                "web.1": try await container("web.web.1", app: "web", kind: .process, type: "web", index: "1"),
                "web.2": try await container("web.web.2", app: "web", kind: .process, type: "web", index: "2"),
                "web.3": try await container("web.web.3", app: "web", kind: .process, type: "web", index: "3", running: false),
                "worker.1": try await container("web.worker.1", app: "web", kind: .process, type: "worker", index: "1"),
                "run": try await container("web.run.1234abcd", app: "web", kind: .run, type: "clock", index: "1"),
                "foreign": try await container("web.web.9", app: "web", kind: .process, type: "web", index: "9", instance: "another-server"),
                "other": try await container("other.web.1", app: "other", kind: .process, type: "web", index: "1"),
                "jobs-clock": try await container("jobs.clock.1", app: "jobs", kind: .process, type: "clock", index: "1"),
                "jobs-worker": try await container("jobs.worker.1", app: "jobs", kind: .process, type: "worker", index: "1"),
                "cron": try await container("cron.clock.1", app: "cron", kind: .process, type: "clock", index: "1"),
            ]
        }
        ids = made
    }

    @discardableResult
    func run(_ argv: [String], as user: String? = nil) throws -> Outcome {
        let principal = try user.map { name in
            Principal(identity: .user(try #require(try core.users.find(UserName(name)))), channel: "ssh")
        } ?? .localAdmin
        let out = Buffer(), err = Buffer()
        let status = runner.run(argv, as: principal, stdout: out, stderr: err, stdin: FixedInput(data: Data()))
        return Outcome(status: status, out: out.text, err: err.text)
    }

    var execs: [String] { engine.calls.filter { $0.hasPrefix("exec ") } }

    @Test func picksWebOneByDefaultTheFirstOfATypeOrTheOneNamed() throws {
        #expect(try run(["enter", "web"], as: "bob").status == 0)
        #expect(execs.last == "exec web.web.1 " + RunService.shell.joined(separator: " "))
        #expect(try run(["enter", "web", "--", "id", "-u"], as: "bob").status == 0)
        #expect(execs.last == "exec web.web.1 id -u")
        #expect(try run(["enter", "web", "worker", "cat", "/proc/1/cmdline"], as: "bob").status == 0)
        #expect(execs.last == "exec web.worker.1 cat /proc/1/cmdline")
        let second = try run(["enter", "web", "web.2", "sh", "-c", "exit 7"], as: "bob")
        #expect(second.status == 0 && second.out == "entered\n", "\(second.err)")
        #expect(execs.last == "exec web.web.2 sh -c exit 7")
        // Without web, the only type; with several and no web, the caller must name one.
        #expect(try run(["enter", "cron"], as: "carol").status == 0)
        #expect(execs.last?.hasPrefix("exec cron.clock.1 ") == true)
        let count = execs.count
        let several = try run(["enter", "jobs"], as: "carol")
        #expect(several.status != 0 && several.err.contains("name one: enter jobs TYPE[.N] (running: clock.1 worker.1)"), "\(several.err)")
        #expect(execs.count == count)
    }

    @Test func theCommandsExitStatusIsTheCommands() throws {
        engine.execStatus = 7
        let result = try run(["enter", "web", "web.1", "sh", "-c", "exit 7"], as: "bob")
        #expect(result.status == 7, "\(result.err)")
        let events = try core.events.recent(for: .localAdmin, limit: 5).map(\.detail)
        #expect(events.contains { $0.contains("entered web.1 (web.web.1)") }, "\(events)")
    }

    @Test func anUnknownOrStoppedProcessListsTheRunningOnes() throws {
        for process in ["web.3", "web.9", "clock", "worker.2"] {
            let result = try run(["enter", "web", process, "true"], as: "bob")
            #expect(result.status == 1, "\(process)")
            #expect(result.err.hasPrefix("error: web has no running process \"\(process)\" (running: web.1 web.2 worker.1)"), "\(result.err)")
        }
        #expect(execs.isEmpty)
    }

    @Test func forgedProcessArgumentsReachNothingElse() throws {
        // Other apps' container names and ids, paths, engine ids of this app's own
        // non-process containers, and near-misses of TYPE.N.
        let forged = ["../other.web.1", "other.web.1", ids["other"]!, ids["run"]!, ids["foreign"]!, ids["web.1"]!, "web.web.1",
                      "web.1/../../other", "web/../other", "web.1.x", "web.01", "web.-1", "web.0", "web.", ".1", "WEB", "web.1 ", "*", "web.+1"]
        for process in forged {
            let result = try run(["enter", "web", process, "id"], as: "bob")
            #expect(result.status == 1, "\(process)")
            #expect(result.err.hasPrefix("error: ") && result.err.contains("running: web.1 web.2 worker.1"), "\(process): \(result.err)")
        }
        #expect(execs.isEmpty, "\(execs)")
    }

    @Test func readersAndStrangersAreRefusedAndNothingRuns() throws {
        let reader = try run(["enter", "web", "web.1", "id"], as: "dave")
        #expect(reader.status == 1 && reader.err.contains("write"), "\(reader.err)")
        let stranger = try run(["enter", "web", "web.1", "id"], as: "erin")
        #expect(stranger.status == 1 && stranger.err.hasPrefix("error: app \"web\" not found"), "\(stranger.err)")
        // Another tenant's app, by its own name, through the caller's own app's name, and through --app.
        #expect(try run(["enter", "other", "web.1", "id"], as: "bob").err.hasPrefix("error: app \"other\" not found"))
        #expect(try run(["--app", "other", "enter", "web.1", "id"], as: "bob").status == 1)
        #expect(execs.isEmpty, "\(execs)")
    }

    @Test func pathsWrittenOutsideStorageAreNamedAsKeptOnlyInThatContainer() throws {
        #expect(try run(["storage:mount", "web", "data:/app/data"], as: "bob").status == 0)
        engine.execWrites = ["/app/scratch.txt", "/app/data/kept", "/tmp/x"]
        let result = try run(["enter", "web", "web.1", "touch", "/app/scratch.txt"], as: "bob")
        #expect(result.status == 0)
        #expect(result.err.contains("-----> Written outside persistent storage: these paths stay only in this container (web.1) until its next deploy or restart:"))
        #expect(result.err.contains("       /app/scratch.txt\n"))
        #expect(!result.err.contains("/app/data") && !result.err.contains("/tmp/x"))
        #expect(result.err.contains("storage:mount web <storage>:<path>"))
        // Paths written before this command are not its own.
        engine.execWrites = []
        #expect(try run(["enter", "web", "web.1", "true"], as: "bob").err.isEmpty)
    }
}
