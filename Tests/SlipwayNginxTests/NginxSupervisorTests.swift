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

    /// A service that asks its group to shut down gracefully, as SIGTERM does, once
    /// `ready` says so (polled; at the latest after `deadline`).
    struct Terminator: Service {
        var ready: @Sendable () -> Bool = { true }
        /// Far: in the full suite, end-to-end tests that block hold the cooperative
        /// pool's two threads for minutes (the supervisor then checked twice in 5 min).
        var deadline: Duration = .seconds(900)
        let group: @Sendable () -> ServiceGroup?
        func run() async throws {
            let end = ContinuousClock.now + deadline
            repeat { try await Task.sleep(for: .milliseconds(50)) } while !ready() && ContinuousClock.now < end
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
        // The supervisor last, as in `serve`: it is the first to be shut down. Shut down
        // once it has checked three times (or after 15 minutes: on a machine whose
        // threads are all busy, a fixed 400 ms saw a single check).
        let watched = Terminator(ready: { calls.all.filter { $0 == "ensure" }.count >= 3 }, group: { box.group })
        let group = ServiceGroup(configuration: .init(services: [watched, supervisor],
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

    /// Neither a recovery still running nor the wait between checks holds up shutdown:
    /// both are far longer than the test may take, and shutdown must come first.
    /// (Not timed against a fixed bound: on a loaded machine, a 200 ms sleep took 100 s.)
    @Test(arguments: [(recovery: 3600.0, interval: Duration.milliseconds(50)), (recovery: 0, interval: .seconds(3600))])
    func shutdownWaitsForNothingTheSupervisorDoes(_ timing: (recovery: Double, interval: Duration)) async throws {
        let calls = Calls()
        let supervisor = NginxSupervisor(ensureRunning: { calls.add("ensure"); return false }, rotateAccessLogs: { [] },
                                         afterStart: { calls.add("recovering"); Thread.sleep(forTimeInterval: timing.recovery) },
                                         interval: timing.interval, port: 8080, logger: Logger(label: "test"))
        let box = GroupBox()
        // Shut down once the recovery is under way (and so is the first wait, with no recovery).
        let group = ServiceGroup(configuration: .init(services: [Terminator(ready: { calls.all.contains("recovering") }, group: { box.group }), supervisor],
                                                      logger: Logger(label: "test")))
        box.group = group
        let stopped = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask { try await group.run(); return true }
            // Long enough for any load, far shorter than the hour either wait would take.
            tasks.addTask { try await Task.sleep(for: .seconds(900)); return false }
            let first = try await tasks.next()!
            tasks.cancelAll()
            return first
        }
        #expect(stopped, "shutdown waited for the supervisor's \(timing.recovery > 0 ? "recovery" : "interval")")
    }
}
