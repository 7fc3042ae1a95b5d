import Foundation

/// The host's process table, as the deploy locks see it: a lock names the process
/// that holds it (a push's pre-receive hook, a local CLI call, the server) and when
/// it took the lock, and a lock whose process is gone is free. `SlipwayHost.LocalProcesses`
/// reads the real table; the core itself never signals a process or reads `/proc`.
public protocol HostProcesses: Sendable {
    /// Whether `pid` is a live process (a zombie waiting to be reaped is not) that
    /// was already running at `startedBy`: a process started later has only been
    /// given a number the lock's holder left behind.
    func isRunning(_ pid: Int32, startedBy: Date) -> Bool
    /// Ends `pid` at once (SIGKILL), if it is still the process running since
    /// `startedBy`: a deploy of a server that is gone.
    func forceStop(_ pid: Int32, startedBy: Date)
}

extension DeployLocks {
    /// Whether the process that took `lock` still runs.
    func isHeld(_ lock: DeployLock) -> Bool { processes.isRunning(lock.pid, startedBy: lock.acquiredAt) }
}
