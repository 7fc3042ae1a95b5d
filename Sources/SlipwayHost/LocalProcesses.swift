import Foundation
import SlipwayCore

/// The host's own process table (`kill(2)` and `/proc/<pid>/stat`).
public struct LocalProcesses: HostProcesses {
    public init() {}

    public func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        // A zombie (reaped later by its parent) is not deploying anything.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return false }
        return true
    }

    public func forceStop(_ pid: Int32) {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
    }
}
