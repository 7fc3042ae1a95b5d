import Foundation
import Testing
@testable import SlipwayCore

/// A task's output is followed to the container's end, even when the engine's follow
/// stream stays open after the exit (podman 4.3 in ci22: a deploy hung for the task's
/// one-hour timeout).
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
        #expect(elapsed >= 9 && elapsed < 60, "\(elapsed) s")
    }
}

private final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var parts: [String] = []
    func add(_ part: String) { lock.withLock { parts.append(part) } }
    var text: String { lock.withLock { parts.joined() } }
}
