import Foundation
import SlipwayCore
import SlipwayHost
import Testing

/// A deploy lock's holder is a pid and the time it took the lock; pids come back
/// (pid_max is 32768 on many hosts), and recovery SIGKILLs a holder it finds alive.
@Suite("The host's process table")
struct LocalProcessesTests {
    let processes = LocalProcesses()

    @Test func aLiveProcessHoldsOnlyWhatItTookAfterItStarted() throws {
        let me = ProcessInfo.processInfo.processIdentifier
        #expect(processes.isRunning(me, startedBy: Date()))
        // Taken before this process existed: its number is only a reused one.
        #expect(!processes.isRunning(me, startedBy: Date().addingTimeInterval(-ProcessInfo.processInfo.systemUptime - 60)))
    }

    @Test func anEndedProcessHoldsNothing() throws {
        let child = try ChildProcess("/bin/true", [])
        child.wait()
        #expect(!processes.isRunning(child.pid, startedBy: Date()))
        #expect(!processes.isRunning(0, startedBy: Date()) && !processes.isRunning(-1, startedBy: Date()))
    }

    @Test func forceStopSparesAProcessThatOnlyReusesTheHoldersNumber() throws {
        let before = Date().addingTimeInterval(-5)
        let child = try ChildProcess("/bin/sleep", ["30"])
        defer { child.signal(SIGKILL) }
        // A lock taken 5 s before this process started: not its own.
        processes.forceStop(child.pid, startedBy: before)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(child.isRunning)
        processes.forceStop(child.pid, startedBy: Date())
        #expect(child.wait() == 128 + SIGKILL)
    }
}
