import Foundation

/// `run` and `run:detached` of an app set to the kubernetes scheduler: a Job of its
/// current release on the cluster (`ClusterScheduler.run`), not a container here.
extension RunService {
    /// The Job's output streamed to the caller's stdout and its exit status; nil for an
    /// app on this host. A terminal (`ssh -t`) is refused: the Job's pod is not attached.
    func clusterRun(_ app: AppName, command: [String], io: IO) throws -> Int32? {
        guard let target = try deploys?.clusterTarget(app) else { return nil }
        if io.terminal != nil {
            throw UserFacingError(.usage, "interactive runs (ssh -t) are not supported on the kubernetes scheduler yet: \(app) runs there; run the command without -t (its output is streamed and its exit status returned, stdin is not read)")
        }
        let stdout = io.stdout
        return try target.cluster.run(target.state, command: command, output: { _ = stdout(Data(($0 + "\n").utf8)) },
                                      isCancelled: io.isCancelled)
    }

    /// Starts the Job and returns its name (it is removed an hour after it ends); nil
    /// for an app on this host. `logs`, `run:list` and `run:stop` do not see it.
    func clusterRunDetached(_ app: AppName, command: [String], by caller: Caller) throws -> String? {
        guard let target = try deploys?.clusterTarget(app) else { return nil }
        let name = try target.cluster.startRun(target.state, command: command)
        try events.record(caller, app: app.rawValue, detail: "started Job \(name) on the kubernetes scheduler")
        return name
    }
}
