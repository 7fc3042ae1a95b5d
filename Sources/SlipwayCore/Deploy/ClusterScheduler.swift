import Foundation

/// The port to a cluster scheduler (issue 20): where an app set to `kubernetes` is
/// rolled out instead of this host's engine. `SlipwayKubernetes.KubernetesDeployer`
/// implements it; `slipway` gives one to `Core` when the `kubeconfig` setting names a
/// cluster. Calls block (commands run on plain threads), as the engine's bridge does.
public protocol ClusterScheduler: Sendable {
    /// Rolls `state` out: pushes its image to the registry, applies its objects (running
    /// its predeploy Jobs first when `runTasks`), waits for every Deployment, prunes what
    /// the app has that `state` no longer renders. When a rollout does not become ready,
    /// `previous` (the release serving until now) is applied again and it throws.
    func rollOut(_ state: SchedulerService.AppState, previous: SchedulerService.AppState?, runTasks: Bool,
                 output: @escaping @Sendable (String) -> Void) throws
    /// Runs postdeploy task `number` (from 1, app.json's order) of `state`'s release as
    /// its Job, once the rollout switched the app: waits for it and shows its output
    /// indented, as a local task's. Throws a `UserFacingError` naming the task when it
    /// fails or outruns the task timeout (its Job is deleted then); the caller reports it
    /// and keeps the release, as locally. Only for a new release: a rollout of one again
    /// (`ps:scale`, `ps:restart`) never calls it.
    func runPostdeployTask(_ number: Int, of state: SchedulerService.AppState, output: @escaping @Sendable (String) -> Void) throws
    /// Applies `state`'s routing objects only (web's Ingress, the TLS Secret, which goes
    /// when the app has no certificate any more), for `domains:*` and `certs:*`, which
    /// change no release: no image push, no Deployment touched.
    func applyRouting(_ state: SchedulerService.AppState) throws
    /// Runs `command` (argv; a shell's words when one string) with the current release as a
    /// Job, streaming its output as the pod writes it; returns the pod's exit status. When
    /// `isCancelled` turns true (the caller left) the Job is deleted.
    func run(_ state: SchedulerService.AppState, command: [String], output: @escaping @Sendable (String) -> Void,
             isCancelled: @escaping @Sendable () -> Bool) throws -> Int32
    /// `run:detached`: starts the same Job and returns its name at once.
    func startRun(_ state: SchedulerService.AppState, command: [String]) throws -> String
    /// `run:list`: the app's `run` and `run:detached` Jobs (never its predeploy or cron
    /// Jobs), running or ended (the cluster removes them an hour after), oldest first.
    func runs(of app: AppName) throws -> [ClusterRun]
    /// `run:stop`: deletes the app's run Job `name` and its pod. False, with nothing
    /// done, when the app has no run Job of that name.
    func stopRun(_ app: AppName, name: String) throws -> Bool
    /// `cron:run`: the cron entry `entryID` of `state` once, now, as a Job made from the
    /// entry's CronJob template (as `kubectl create job --from=cronjob`), followed as
    /// `run` follows its Job; `started` is told the Job's name once it exists. Deleted
    /// when `isCancelled` turns true.
    func runCron(_ state: SchedulerService.AppState, entryID: String, output: @escaping @Sendable (String) -> Void,
                 isCancelled: @escaping @Sendable () -> Bool, started: (String) throws -> Void) throws -> Int32
    /// `logs`: the output of the app's process pods (of `processType` only when given),
    /// `tail` lines of each, followed until `isCancelled` when `follow`; lines prefixed
    /// `app[type.pod]: ` as the local ones are.
    func logs(_ app: AppName, processType: String?, tail: Int, follow: Bool, output: @escaping @Sendable (String) -> Void,
              isCancelled: @escaping @Sendable () -> Bool) throws
    /// What the app runs on the cluster: one entry per Deployment (`ps:report`).
    func processes(of app: AppName) throws -> [ClusterProcess]
    /// Removes everything the app has on the cluster (its namespace and the objects in
    /// it), for `scheduler:set APP local` and `apps:destroy`; one line per step to
    /// `output`. Throws when the cluster cannot be reached or refuses.
    func remove(_ app: AppName, output: @escaping @Sendable (String) -> Void) throws
}

extension ClusterScheduler {
    /// `run` for a caller that stays.
    public func run(_ state: SchedulerService.AppState, command: [String], output: @escaping @Sendable (String) -> Void) throws -> Int32 {
        try run(state, command: command, output: output, isCancelled: { false })
    }
}

/// A run Job on the cluster as `run:list` shows it.
public struct ClusterRun: Sendable, Equatable {
    public let name: String
    /// The command as it was given (`/bin/sh -c` of a one-string run taken off).
    public let command: String
    public let started: Date?
    /// `running`, `succeeded` or `failed`.
    public let state: String

    public init(name: String, command: String, started: Date?, state: String) {
        self.name = name
        self.command = command
        self.started = started
        self.state = state
    }
}

/// A process type's Deployment on the cluster: replicas wanted and ready.
public struct ClusterProcess: Sendable, Equatable {
    public let type: String
    public let deployment: String
    public let release: String
    public let desired: Int
    public let ready: Int

    public init(type: String, deployment: String, release: String, desired: Int, ready: Int) {
        self.type = type
        self.deployment = deployment
        self.release = release
        self.desired = desired
        self.ready = ready
    }
}
