import Foundation
import Logging
import ServiceLifecycle
import Testing
@testable import SlipwayNginx

/// The supervisor as `slipway serve` runs it, in a ServiceGroup, with recording
/// stand-ins for nginx (nothing is started).
@Suite("nginx: the supervisor service")
struct NginxSupervisorTests {
    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ call: String) { lock.withLock { list.append(call) } }
        var all: [String] { lock.withLock { list } }
    }

    /// A service that asks its group to shut down gracefully, as SIGTERM does, once `after` has passed.
    struct Terminator: Service {
        let after: Duration
        let group: @Sendable () -> ServiceGroup?
        func run() async throws {
            try await Task.sleep(for: after)
            await group()?.triggerGracefulShutdown()
            try? await gracefulShutdown()
        }
    }

    final class GroupBox: @unchecked Sendable {
        var group: ServiceGroup?
    }

    @Test func itStartsRecoversWatchesAndStopsAtGracefulShutdown() async throws {
        let calls = Calls()
        let supervisor = NginxSupervisor(ensureRunning: { calls.add("ensure"); return calls.all.count == 1 },
                                         rotateAccessLogs: { calls.add("rotate"); return [] },
                                         afterStart: { calls.add("recover") }, interval: .milliseconds(50), port: 8080,
                                         logger: Logger(label: "test"))
        let box = GroupBox()
        // The supervisor last, as in `serve`: it is the first to be shut down.
        let group = ServiceGroup(configuration: .init(services: [Terminator(after: .milliseconds(400), group: { box.group }), supervisor],
                                                      logger: Logger(label: "test")))
        box.group = group
        try await group.run()
        let seen = calls.all
        #expect(Array(seen.prefix(2)) == ["ensure", "recover"], "\(seen)")
        #expect(seen.filter { $0 == "ensure" }.count >= 3, "the supervisor did not keep watching: \(seen)")
        #expect(seen.filter { $0 == "recover" }.count == 1)
        // Nothing more once it stopped: nginx must not come back after shutdown.
        let after = calls.all.count
        try await Task.sleep(for: .milliseconds(200))
        #expect(calls.all.count == after)
    }

    /// Neither a recovery still running nor the wait between checks holds up shutdown.
    @Test(arguments: [(recovery: 20.0, interval: Duration.milliseconds(50)), (recovery: 0, interval: .seconds(60))])
    func shutdownWaitsForNothingTheSupervisorDoes(_ timing: (recovery: Double, interval: Duration)) async throws {
        let supervisor = NginxSupervisor(ensureRunning: { false }, rotateAccessLogs: { [] },
                                         afterStart: { Thread.sleep(forTimeInterval: timing.recovery) }, interval: timing.interval, port: 8080,
                                         logger: Logger(label: "test"))
        let box = GroupBox()
        let group = ServiceGroup(configuration: .init(services: [Terminator(after: .milliseconds(200), group: { box.group }), supervisor],
                                                      logger: Logger(label: "test")))
        box.group = group
        let started = ContinuousClock.now
        try await group.run()
        // Well under either wait, with room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
