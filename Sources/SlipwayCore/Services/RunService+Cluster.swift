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
    /// for an app on this host. `run:list` shows it and `run:stop` ends it.
    func clusterRunDetached(_ app: AppName, command: [String], by caller: Caller) throws -> String? {
        guard let target = try deploys?.clusterTarget(app) else { return nil }
        let name = try target.cluster.startRun(target.state, command: command)
        try events.record(caller, app: app.rawValue, detail: "started Job \(name) on the kubernetes scheduler")
        return name
    }

    /// The app's run Jobs on the cluster (nil for an app on this host), as `run:list` lists them.
    func clusterRuns(_ app: AppName) throws -> [RunListing]? {
        guard let deploys, let cluster = try deploys.clusterScheduler(of: try deploys.existing(app)) else { return nil }
        return try cluster.runs(of: app).map { RunListing(name: $0.name, state: $0.state, started: $0.started, by: nil, command: $0.command) }
    }

    /// `run:stop` of an app set to kubernetes: deletes its run Job `name` (and the pod).
    /// Nil for an app on this host; false when the app has no run Job of that name
    /// (the caller then looks among this host's containers, and answers as for those).
    func clusterStop(_ app: AppName, name: String, by caller: Caller) throws -> Bool? {
        guard let deploys, let cluster = try deploys.clusterScheduler(of: try deploys.existing(app)) else { return nil }
        guard try cluster.stopRun(app, name: name) else { return false }
        try events.record(caller, app: app.rawValue, detail: "stopped Job \(name) on the kubernetes scheduler")
        return true
    }
}

/// One of an app's runs as `run:list` shows it (text or `--format json`): a container
/// on this host, or a Job on the app's cluster.
public struct RunListing: Sendable, Codable, Equatable {
    public var name: String
    /// The engine's state of a container (`running`); `running`, `succeeded` or `failed` for a Job.
    public var state: String
    public var started: Date?
    /// Who started it (nil: not recorded, as for a Job; the audit log has it).
    public var by: String?
    public var command: String
}
