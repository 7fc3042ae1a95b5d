import Foundation
import SlipwayCore

/// The host's own process table (`kill(2)` and `/proc`).
public struct LocalProcesses: HostProcesses {
    public init() {}

    public func isRunning(_ pid: Int32, startedBy: Date) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno != ESRCH, let stat = Self.stat(pid) else { return false }
        // A zombie (reaped later by its parent) is not deploying anything.
        if stat.state == "Z" { return false }
        // Numbers come back (pid_max is often 32768): a process that started after the
        // lock was taken is not its holder. Start times are known to a second (btime).
        guard let started = Self.startTime(ticks: stat.startTicks) else { return true }
        return started <= startedBy.addingTimeInterval(1)
    }

    public func forceStop(_ pid: Int32, startedBy: Date) {
        guard isRunning(pid, startedBy: startedBy) else { return }
        kill(pid, SIGKILL)
    }

    /// The state letter and start time (clock ticks after boot) of `/proc/<pid>/stat`.
    static func stat(_ pid: Int32) -> (state: Character, startTicks: UInt64)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state is field 3, starttime field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let ticks = UInt64(fields[19]) else { return nil }
        return (state, ticks)
    }

    /// Boot time (`btime` in /proc/stat) plus `ticks`.
    static func startTime(ticks: UInt64) -> Date? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.dropFirst("btime ".count)) else { return nil }
        return Date(timeIntervalSince1970: boot + Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK))))
    }
}
