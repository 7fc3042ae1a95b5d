import Foundation
import Testing
@testable import SlipwayCore

/// `ProcessRunner.run`: output and status, and its timeout (the ACME client's only
/// guard against a CA that never answers).
@Suite("ProcessRunner")
struct ProcessRunnerTests {
    @Test func itReturnsTheStatusAndBothOutputs() throws {
        let result = try ProcessRunner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 10)
        #expect(result.status == 3 && result.stdout == "out\n" && result.stderr == "err\n")
    }

    @Test func aProgramPastItsTimeoutIsStoppedWithWhatItWrote() throws {
        let started = Date()
        do {
            _ = try ProcessRunner.run("/bin/sh", ["-c", "echo partial; echo why >&2; exec sleep 30"], timeout: 0.5)
            Issue.record("a 30 s sleep ended within its 0.5 s timeout")
        } catch let stopped as ProcessRunner.TimedOut {
            #expect(stopped.stdout == "partial\n" && stopped.stderr == "why\n" && stopped.seconds == 0.5)
        }
        #expect(Date().timeIntervalSince(started) < 5)
    }

    /// A grandchild keeps the pipes open after the program is stopped: `run` returns anyway.
    @Test func aGrandchildHoldingTheOutputDoesNotHoldTheCaller() throws {
        let started = Date()
        var grandchild: pid_t?
        defer { if let grandchild { kill(grandchild, SIGKILL) } }
        do {
            _ = try ProcessRunner.run("/bin/sh", ["-c", "sleep 30 & echo $!; wait"], timeout: 0.5)
            Issue.record("the program ended within its timeout")
        } catch let stopped as ProcessRunner.TimedOut {
            grandchild = pid_t(stopped.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(grandchild != nil, "\(stopped.stdout)")
        }
        // 0.5 s, 2 s for SIGTERM, at most a second each for the exit and the output.
        #expect(Date().timeIntervalSince(started) < 8)
    }
}
