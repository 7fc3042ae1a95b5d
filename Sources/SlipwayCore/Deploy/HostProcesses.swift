/// The host's process table, as the deploy locks see it: a lock names the process
/// that holds it (a push's pre-receive hook, a local CLI call, the server), and a
/// lock whose process is gone is free. `SlipwayHost.LocalProcesses` reads the real
/// table; the core itself never signals a process or reads `/proc`.
public protocol HostProcesses: Sendable {
    /// Whether `pid` is a live process (a zombie waiting to be reaped is not).
    func isRunning(_ pid: Int32) -> Bool
    /// Ends `pid` at once (SIGKILL): a deploy of a server that is gone.
    func forceStop(_ pid: Int32)
}
