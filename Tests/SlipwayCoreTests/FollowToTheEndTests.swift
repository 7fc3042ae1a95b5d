import Foundation
import Testing
@testable import SlipwayCore

/// A task's output is followed to the container's end, even when the engine's follow
/// stream stays open after the exit (podman 4.3 in ci22: a deploy hung for the task's
/// one-hour timeout) or closes before its last lines (ci37: npm's error cut short).
@Suite("Containers follow a task to its end")
struct FollowToTheEndTests {
    @Test func aStreamLeftOpenAfterTheExitEndsAfterTheGrace() throws {
        let engine = FakeEngine()
        engine.followStaysOpen = true
        engine.output = "migrated\n"
        let containers = Containers(engine: engine, instance: "test")
        let spec = ContainerSpec(image: "slipway/web:1", command: ["migrate"])
        let seen = LockedLines()
        let started = Date()
        // A timeout well past the grace: only the exit-and-grace path can end it in time.
        let ended = try containers.runToEnd(spec, labels: containers.labels(app: AppName("web"), kind: .task),
                                            timeout: .seconds(120)) { seen.add(String(decoding: $0.data, as: UTF8.self)) }
        let elapsed = Date().timeIntervalSince(started)
        #expect(ended.status == 0)
        #expect(seen.text == "migrated\n")
        #expect(elapsed >= 1.5 && elapsed < 60, "\(elapsed) s")
    }

    /// Every line once, in its stream, though the follow stream sent only the first two.
    @Test func linesAStreamClosedEarlyLeftOutComeFromTheStoredLog() throws {
        let engine = FakeEngine()
        engine.output = "code E404\n404\n"
        engine.errorOutput = "404 Not Found - GET /no-such-package\n'no-such-package' is not in this registry\n"
        engine.followEndsAfterLines = [2]
        let containers = Containers(engine: engine, instance: "test")
        let seen = LockedLines()
        let ended = try containers.runToEnd(ContainerSpec(image: "slipway/web:1", command: ["npm", "install"]),
                                            labels: containers.labels(app: AppName("web"), kind: .helper)) { chunk in
            seen.add((chunk.stream == .stderr ? "E " : "O ") + String(decoding: chunk.data, as: UTF8.self))
        }
        #expect(ended.status == 0)
        #expect(seen.text == "O code E404\nO 404\nE 404 Not Found - GET /no-such-package\nE 'no-such-package' is not in this registry\n")
    }

    /// A stream that ends while the container still runs is opened again (not left until
    /// the exit: a detached run's stored output would stop for as long as it runs), and
    /// what the second stream repeats is not passed on twice.
    @Test func aStreamThatEndsWhileTheContainerRunsIsOpenedAgain() throws {
        let engine = FakeEngine()
        engine.output = "one\ntwo\nthree\n"
        engine.followEndsAfterLines = [1, 2]
        engine.runsFor = 2.5
        let containers = Containers(engine: engine, instance: "test")
        let seen = LockedLines()
        let started = Date()
        let ended = try containers.runToEnd(ContainerSpec(image: "slipway/web:1", command: ["worker"]),
                                            labels: containers.labels(app: AppName("web"), kind: .task)) { seen.add(String(decoding: $0.data, as: UTF8.self)) }
        #expect(ended.status == 0)
        #expect(seen.text == "one\ntwo\nthree\n")
        #expect(Date().timeIntervalSince(started) >= 2.5)
        // Two streams cut short while it ran, the third until its end.
        #expect(engine.calls.filter { $0.hasPrefix("logs follow ") }.count >= 3, "\(engine.calls)")
    }

    /// Reads of a log cut into chunks differently: each byte passes once, in its stream.
    @Test func readsCutDifferentlyPassEachByteOnce() {
        let reads = LogReads()
        var passed: [String] = []
        func read(_ chunks: [(OutputChunk.Stream, String)]) {
            reads.startRead()
            for (stream, text) in chunks {
                if let new = reads.pass(OutputChunk(stream: stream, data: Data(text.utf8))) {
                    passed.append((stream == .stdout ? "O:" : "E:") + String(decoding: new.data, as: UTF8.self))
                }
            }
        }
        read([(.stdout, "abc"), (.stderr, "x")])
        read([(.stdout, "ab"), (.stderr, "xy"), (.stdout, "cdef")])
        read([(.stdout, "abcdefg"), (.stderr, "xyz")])
        #expect(passed == ["O:abc", "E:x", "E:y", "O:def", "O:g", "E:z"])
    }
}

private final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var parts: [String] = []
    func add(_ part: String) { lock.withLock { parts.append(part) } }
    var text: String { lock.withLock { parts.joined() } }
}
