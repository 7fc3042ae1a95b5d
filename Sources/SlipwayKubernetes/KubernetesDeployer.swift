import Foundation
import SlipwayCore

/// Core's `ClusterScheduler` on a Kubernetes cluster: push, apply, predeploy Jobs,
/// rollout wait, prune, the rollback of a rollout that does not become ready, and the
/// postdeploy Jobs Core asks for after the switch.
/// Prints the local pipeline's kind of step lines (`-----> ...`, task output indented
/// by seven spaces) and fails with the same kind of `error:` lines.
public struct KubernetesDeployer: ClusterScheduler {
    public let cluster: any KubernetesCluster
    /// Pushes the release's image to the registry (`/images/{name}/push`).
    public let engine: any ContainerEngine
    /// How long each Deployment may take to become ready before the rollout fails
    /// (the Deployment's own progress deadline may say so first).
    public var rolloutTimeout: TimeInterval
    /// How long a deploy task's Job (predeploy, postdeploy) may run.
    public var taskTimeout: TimeInterval
    /// Between two reads of a Deployment's or a Job's status.
    public var pollInterval: TimeInterval

    public init(cluster: any KubernetesCluster, engine: any ContainerEngine, rolloutTimeout: TimeInterval = 600,
                taskTimeout: TimeInterval = 3600, pollInterval: TimeInterval = 2) {
        self.cluster = cluster
        self.engine = engine
        self.rolloutTimeout = rolloutTimeout
        self.taskTimeout = taskTimeout
        self.pollInterval = pollInterval
    }

    /// The deployer of the cluster the settings name (`kubeconfig`, `kube_context`);
    /// nil when none is set. A Deployment gets `check_timeout` plus the time to pull.
    /// The kubeconfig is read when a deploy first needs it: a broken one fails that
    /// deploy with its reason, not every command of the server.
    public static func configured(_ settings: Settings, engine: any ContainerEngine) -> KubernetesDeployer? {
        guard let path = settings.kubeconfig else { return nil }
        return KubernetesDeployer(cluster: DeferredCluster(path: path, context: settings.kubeContext), engine: engine,
                                  rolloutTimeout: TimeInterval(max(settings.checkTimeout, 30) + 300))
    }

    // MARK: ClusterScheduler

    public func rollOut(_ state: SchedulerService.AppState, previous: SchedulerService.AppState?, runTasks: Bool,
                        output: @escaping @Sendable (String) -> Void) throws {
        let spec = KubernetesAppSpec(state: state)
        let objects = try KubernetesRenderer().render(spec)
        let namespace = KubeNames.namespace(of: spec.app)
        try push(state, spec: spec, output: output)

        // Everything but what runs: the namespace, Secrets, claims; then the predeploy
        // Jobs one by one; then the processes and the rest. Applying a Job runs it, so
        // task Jobs are applied only to run them: predeploy's here for a new release,
        // postdeploy's when Core asks after the switch (`runPostdeployTask`). A rollout of
        // the release again (ps:scale) applies neither: its Jobs may be gone by their TTL,
        // and applying one would run its task again. Prune keeps them (they are rendered).
        let jobs = objects.filter { $0.kind == "Job" }
        let before = objects.filter { ["Namespace", "Secret", "PersistentVolumeClaim"].contains($0.kind) }
        let after = objects.filter { !jobs.contains($0) && !before.contains($0) }
        let applied = before.count + after.count + (runTasks ? spec.predeploy.count : 0)
        output("-----> Applying \(applied) objects to namespace \(namespace) (server-side apply as \(KubernetesRenderer.fieldManager))")
        try call("applying \(spec.app)'s objects") { try await cluster.apply(before, fieldManager: KubernetesRenderer.fieldManager) }
        if runTasks {
            for (name, command) in zip(KubernetesRenderer.predeployJobNames(spec), spec.predeploy) {
                guard let job = jobs.first(where: { $0.name == name }) else { continue }
                try runTask(job, phase: "predeploy", command: command, namespace: namespace, output: output)
            }
        }
        try call("applying \(spec.app)'s objects") { try await cluster.apply(after, fieldManager: KubernetesRenderer.fieldManager) }

        do {
            for process in spec.processes.sorted(by: { $0.type < $1.type }) {
                try waitForRollout(process, namespace: namespace, output: output)
            }
        } catch {
            if let previous {
                let label = "v\(previous.release)"
                output("-----> Rolling back to \(label) on the cluster")
                do {
                    let old = try KubernetesRenderer().render(KubernetesAppSpec(state: previous))
                    // Its tasks ran when it was deployed: its Jobs are kept, not applied (that would run them).
                    let again = old.filter { $0.kind != "Job" }
                    try call("applying \(label) again") { try await cluster.apply(again, fieldManager: KubernetesRenderer.fieldManager) }
                    try prune(keeping: old, app: spec.app, namespace: namespace, output: output)
                } catch {
                    output(" !     could not apply \(label) again: \((error as? UserFacingError)?.message ?? "\(error)")")
                }
            }
            throw error
        }
        try prune(keeping: objects, app: spec.app, namespace: namespace, output: output)
    }

    public func applyRouting(_ state: SchedulerService.AppState) throws {
        let spec = KubernetesAppSpec(state: state)
        let namespace = KubeNames.namespace(of: spec.app)
        let objects = try KubernetesRenderer().render(spec)
        let tls = objects.filter { $0.kind == "Secret" && $0.name == KubernetesRenderer.tlsSecretName }
        let routing = tls + objects.filter { $0.kind == "Ingress" }
        if !routing.isEmpty {
            try call("applying \(spec.app)'s Ingress") { try await cluster.apply(routing, fieldManager: KubernetesRenderer.fieldManager) }
        }
        if tls.isEmpty {
            // certs:remove: the Ingress above has no TLS any more; the key goes too (gone already is fine).
            let secret = KubeObjectReference(kind: KubeKind.rendered.first { $0.kind == "Secret" }!, namespace: namespace, name: KubernetesRenderer.tlsSecretName)
            try call("deleting Secret \(secret.name)") { try await cluster.delete(secret) }
        }
    }

    public func runPostdeployTask(_ number: Int, of state: SchedulerService.AppState, output: @escaping @Sendable (String) -> Void) throws {
        let spec = KubernetesAppSpec(state: state)
        let names = KubernetesRenderer.postdeployJobNames(spec)
        guard names.indices.contains(number - 1),
              let job = try KubernetesRenderer().render(spec).first(where: { $0.kind == "Job" && $0.name == names[number - 1] }) else {
            throw UserFacingError.notFound("v\(spec.release) of \(spec.app) has no postdeploy task \(number)")
        }
        try runTask(job, phase: "postdeploy", command: spec.postdeploy[number - 1], namespace: KubeNames.namespace(of: spec.app), output: output)
    }

    public func run(_ state: SchedulerService.AppState, command: [String], output: @escaping @Sendable (String) -> Void,
                    isCancelled: @escaping @Sendable () -> Bool) throws -> Int32 {
        let (name, namespace) = try startJob(state, command: command)
        return try follow(name, namespace: namespace, what: "run", output: output, isCancelled: isCancelled)
    }

    /// A started Job to its end: its output as it comes (once the pod left Pending, its
    /// log is followed to the container's end), then its pod's exit status. Deleted
    /// (with its pod) when `isCancelled` turns true: 130.
    private func follow(_ name: String, namespace: String, what: String, output: @escaping @Sendable (String) -> Void,
                        isCancelled: @escaping @Sendable () -> Bool) throws -> Int32 {
        let reference = KubeObjectReference(kind: KubeKind.rendered.first { $0.kind == "Job" }!, namespace: namespace, name: name)
        var status = KubeJobStatus.running
        while true {
            if isCancelled() {
                try? call("deleting \(name)") { try await cluster.delete(reference) }
                return 130
            }
            status = try call("reading Job \(name)") { try await cluster.jobStatus(namespace: namespace, name: name) }
            let phase = try call("reading the pod of \(name)") { try await cluster.jobPodPhase(namespace: namespace, name: name) }
            if status != .running || (phase != nil && phase != "Pending") { break }
            Thread.sleep(forTimeInterval: pollInterval)
        }
        try call("reading the output of \(name)") { try await cluster.jobLogs(namespace: namespace, name: name, output: output) }
        status = try waitForJob(name, namespace: namespace, timeout: .infinity, isCancelled: isCancelled)
        if isCancelled() {
            try? call("deleting \(name)") { try await cluster.delete(reference) }
            return 130
        }
        if let code = try call("reading the exit status of \(name)", { try await cluster.jobExitCode(namespace: namespace, name: name) }) {
            return Int32(clamping: code)
        }
        if case .failed(let reason) = status {
            throw UserFacingError(.conflict, "the \(what) Job \(name) in namespace \(namespace) failed without an exit status: \(reason)")
        }
        return 0
    }

    public func runs(of app: AppName) throws -> [ClusterRun] {
        try runJobs(of: app).map { job in
            // A one-string run went through a shell (`startJob`): shown as it was typed.
            let command = job.command.count == 3 && job.command[0...1] == ["/bin/sh", "-c"] ? job.command[2] : job.command.joined(separator: " ")
            let state = switch job.status {
            case .running: "running"
            case .succeeded: "succeeded"
            case .failed: "failed"
            }
            return ClusterRun(name: job.name, command: command, started: job.started, state: state)
        }.sorted { ($0.started ?? .distantPast, $0.name) < ($1.started ?? .distantPast, $1.name) }
    }

    public func stopRun(_ app: AppName, name: String) throws -> Bool {
        // Only a name among the app's own run Jobs is ever put in a URL: another app's Job
        // (another namespace), a predeploy or cron Job, or a made-up name is not found.
        guard let job = try runJobs(of: app).first(where: { $0.name == name }) else { return false }
        let namespace = KubeNames.namespace(of: app.rawValue)
        let reference = KubeObjectReference(kind: KubeKind.rendered.first { $0.kind == "Job" }!, namespace: namespace, name: job.name)
        // `delete` asks for background propagation: a Job deleted without it orphans its pod, which would run on.
        try call("deleting Job \(job.name)") { try await cluster.delete(reference) }
        return true
    }

    /// The app's Jobs labelled as `run` Jobs, in its own namespace.
    private func runJobs(of app: AppName) throws -> [KubeJobSummary] {
        let namespace = KubeNames.namespace(of: app.rawValue)
        let selector = [KubernetesRenderer.Label.app: KubeNames.labelValue(app.rawValue), KubernetesRenderer.Label.task: "run"]
        return try call("listing \(app)'s run Jobs") { try await cluster.jobs(namespace: namespace, labelSelector: selector) }
            .filter { $0.labels[KubernetesRenderer.Label.task] == "run" && $0.labels[KubernetesRenderer.Label.app] == KubeNames.labelValue(app.rawValue) }
    }

    public func runCron(_ state: SchedulerService.AppState, entryID: String, output: @escaping @Sendable (String) -> Void,
                        isCancelled: @escaping @Sendable () -> Bool, started: (String) throws -> Void) throws -> Int32 {
        let spec = KubernetesAppSpec(state: state)
        let namespace = KubeNames.namespace(of: spec.app)
        // The CronJob the release renders for the entry (named as `KubernetesRenderer` names it).
        let cronJobName = KubeNames.label("cron-\(entryID)", maximum: KubeNames.cronJobMaximum)
        guard let cronJob = try KubernetesRenderer().render(spec).first(where: { $0.kind == "CronJob" && $0.name == cronJobName }),
              let template = cronJob.body["spec"]?["jobTemplate"], case .object(var jobSpec)? = template["spec"] else {
            throw UserFacingError.notFound("\(spec.app) has no cron entry \(quoted(entryID)) in its current release; cron:list \(spec.app) shows them")
        }
        // As kubectl create job --from=cronjob: the template's labels and pod, marked manual.
        // Its name fits 63 characters: CronJob names are kept to 52 for the controller's own suffix.
        let name = "\(cronJobName)-m\(UUID().uuidString.prefix(8).lowercased())"
        var labels: [String: String] = [:]
        if case .object(let members)? = template["metadata"]?["labels"] { labels = members.compactMapValues(\.stringValue) }
        // No owner (the CronJob's history limits do not count it): the cluster removes it an hour after it ends.
        jobSpec["ttlSecondsAfterFinished"] = 3600
        let job = KubeObject(apiVersion: "batch/v1", kind: "Job", name: name, namespace: namespace, labels: labels,
                             annotations: ["cronjob.kubernetes.io/instantiate": "manual"], members: ["spec": .object(jobSpec)])
        try call("starting \(name)") { try await cluster.apply([job], fieldManager: KubernetesRenderer.fieldManager) }
        try started(name)
        return try follow(name, namespace: namespace, what: "cron", output: output, isCancelled: isCancelled)
    }

    public func startRun(_ state: SchedulerService.AppState, command: [String]) throws -> String {
        try startJob(state, command: command).name
    }

    /// Applies a `run` Job of the current release; its name and namespace.
    private func startJob(_ state: SchedulerService.AppState, command: [String]) throws -> (name: String, namespace: String) {
        let spec = KubernetesAppSpec(state: state)
        let namespace = KubeNames.namespace(of: spec.app)
        let name = KubeNames.label("run-\(UUID().uuidString.prefix(8).lowercased())")
        // One string is a shell line (`run web 'echo $PORT'`), as locally.
        let argv = command.count == 1 ? ["/bin/sh", "-c", command[0]] : command
        let job = KubernetesRenderer().runJob(spec, name: name, command: argv)
        try call("starting \(name)") { try await cluster.apply([job], fieldManager: KubernetesRenderer.fieldManager) }
        return (name, namespace)
    }

    public func logs(_ app: AppName, processType: String?, tail: Int, follow: Bool, output: @escaping @Sendable (String) -> Void,
                     isCancelled: @escaping @Sendable () -> Bool) throws {
        let namespace = KubeNames.namespace(of: app.rawValue)
        var selector = [KubernetesRenderer.Label.app: KubeNames.labelValue(app.rawValue)]
        // Process pods only (run and task Jobs carry no process type).
        let processes = try self.processes(of: app).filter { processType == nil || $0.type == processType }
        guard !processes.isEmpty else {
            throw UserFacingError.notFound("\(app) has no \(processType.map { "\($0) " } ?? "")processes on the cluster; git push it or ps:scale it")
        }
        let print: @Sendable (KubePodLine) -> Void = { line in
            guard let type = line.labels[KubernetesRenderer.Label.processType] else { return }
            output("\(app)[\(type).\(line.pod)]: \(line.line)")
        }
        if let processType { selector[KubernetesRenderer.Label.processType] = KubeNames.labelValue(processType) }
        let cluster = self.cluster
        if !follow {
            try call("reading the logs of \(app)") { [selector] in
                try await cluster.podLogs(namespace: namespace, labelSelector: selector, tailLines: tail, follow: false, output: print)
            }
            return
        }
        // Followed until the caller leaves (the streams end with their pods, or never).
        let task = Task { [selector] in
            try? await cluster.podLogs(namespace: namespace, labelSelector: selector, tailLines: tail, follow: true, output: print)
        }
        while !isCancelled() { Thread.sleep(forTimeInterval: 0.2) }
        task.cancel()
    }

    public func processes(of app: AppName) throws -> [ClusterProcess] {
        let namespace = KubeNames.namespace(of: app.rawValue)
        let found = try call("listing \(app)'s Deployments") {
            try await cluster.deployments(namespace: namespace, labelSelector: [KubernetesRenderer.Label.app: KubeNames.labelValue(app.rawValue)])
        }
        return found.map {
            ClusterProcess(type: $0.labels[KubernetesRenderer.Label.processType] ?? $0.name, deployment: $0.name,
                           release: $0.labels[KubernetesRenderer.Label.release].map { "v\($0)" } ?? "v?", desired: $0.desired, ready: $0.ready)
        }.sorted { $0.type < $1.type }
    }

    public func remove(_ app: AppName, output: @escaping @Sendable (String) -> Void) throws {
        let namespace = KubeNames.namespace(of: app.rawValue)
        let kinds = KubeKind.rendered.filter { $0.kind != "Namespace" }
        let present = try call("listing \(app)'s objects") {
            try await cluster.list(kinds: kinds, namespace: namespace, labelSelector: [KubernetesRenderer.Label.app: KubeNames.labelValue(app.rawValue)])
        }
        // The namespace takes every object in it (its pods too); deleted one by one first
        // anyway so none outlives a namespace a cluster admin shares or protects.
        for object in present.sorted(by: { ($0.kind.kind, $0.name) < ($1.kind.kind, $1.name) }) {
            try call("deleting \(object.kind.kind) \(object.name)") { try await cluster.delete(object) }
        }
        let kind = KubeKind.rendered.first { $0.kind == "Namespace" }!
        try call("deleting namespace \(namespace)") { try await cluster.delete(KubeObjectReference(kind: kind, namespace: nil, name: namespace)) }
        output("-----> Removed \(app) from the cluster: namespace \(namespace) and its \(present.count) object\(present.count == 1 ? "" : "s")")
    }

    // MARK: Steps

    /// Tags the release's image with its registry name and pushes it, with the stored
    /// `registry:login` credentials. Without a registry a cluster cannot pull the image.
    func push(_ state: SchedulerService.AppState, spec: KubernetesAppSpec, output: @escaping @Sendable (String) -> Void) throws {
        guard let server = state.registry.server else {
            throw UserFacingError.conflict("the kubernetes scheduler needs an image registry the cluster pulls from, and none is set: an admin runs registry:set server HOST (and registry:login HOST USER if it needs credentials); nothing was deployed")
        }
        output("-----> Pushing \(spec.image) to \(server)")
        let auth = Self.registryAuth(server: server, dockerConfigJSON: state.dockerConfigJSON)
        try call("pushing \(spec.image)") { [engine] in
            try await engine.tagImage(state.localImage, as: spec.image)
            try await engine.pushImage(spec.image, registryAuth: auth)
        }
    }

    /// The `X-Registry-Auth` header's value: base64url of `{"username","password","serveraddress"}`.
    static func registryAuth(server: String, dockerConfigJSON: String?) -> String? {
        guard let json = dockerConfigJSON, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let auths = object["auths"] as? [String: Any], let entry = auths[server] as? [String: Any],
              let auth = entry["auth"] as? String, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
              let colon = decoded.firstIndex(of: ":") else { return nil }
        let credentials = ["username": String(decoded[..<colon]), "password": String(decoded[decoded.index(after: colon)...]), "serveraddress": server]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let data = try? encoder.encode(credentials) else { return nil }
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// A deploy task's Job (`phase`: predeploy, postdeploy): applied, waited for, its
    /// output shown indented. Throws naming the task when it fails, or when it outruns
    /// `taskTimeout`: that Job is deleted (its pod with it), as a local task's container
    /// is removed, so it cannot go on behind a release that moved on.
    func runTask(_ job: KubeObject, phase: String, command: String, namespace: String, output: @escaping @Sendable (String) -> Void) throws {
        output("-----> Running \(phase) task: \(command) (Job \(job.name))")
        try call("starting \(job.name)") { try await cluster.apply([job], fieldManager: KubernetesRenderer.fieldManager) }
        let finished = Date().addingTimeInterval(taskTimeout)
        var status = KubeJobStatus.running
        while true {
            status = try call("reading Job \(job.name)") { try await cluster.jobStatus(namespace: namespace, name: job.name) }
            if status != .running || Date() >= finished { break }
            Thread.sleep(forTimeInterval: pollInterval)
        }
        if status == .running {
            // Its log is not read: that follows the pod to its end.
            let kind = KubeKind.rendered.first { $0.kind == "Job" }!
            try? call("deleting \(job.name)") { try await cluster.delete(KubeObjectReference(kind: kind, namespace: namespace, name: job.name)) }
            throw UserFacingError(.conflict, "the \(phase) task \(quoted(command)) did not finish within \(Int(taskTimeout)) s (its Job \(job.name) was deleted)")
        }
        try call("reading the output of \(job.name)") {
            try await cluster.jobLogs(namespace: namespace, name: job.name, output: { output("       " + $0) })
        }
        guard case .failed(let reason) = status else { return }
        let code = try? call("reading the exit status of \(job.name)") { try await cluster.jobExitCode(namespace: namespace, name: job.name) }
        let why = (code ?? nil).map { "exited with status \($0)" } ?? "failed (\(reason))"
        throw UserFacingError(.conflict, "the \(phase) task \(quoted(command)) \(why)")
    }

    func waitForJob(_ name: String, namespace: String, timeout: TimeInterval,
                    isCancelled: @Sendable () -> Bool = { false }) throws -> KubeJobStatus {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let status = try call("reading Job \(name)") { try await cluster.jobStatus(namespace: namespace, name: name) }
            if status != .running || isCancelled() { return status }
            guard Date() < deadline else {
                throw UserFacingError(.conflict, "Job \(name) in namespace \(namespace) did not finish within \(Int(timeout)) s")
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Waits for a process type's Deployment as the local check waits for its
    /// containers: a line when it starts, one per change, one when it is ready.
    func waitForRollout(_ process: KubernetesAppSpec.Process, namespace: String, output: @escaping @Sendable (String) -> Void) throws {
        let name = KubernetesRenderer.deploymentName(process.type)
        output("-----> Rolling out \(process.replicas) \(process.type) process\(process.replicas == 1 ? "" : "es") (Deployment \(name))")
        let deadline = Date().addingTimeInterval(rolloutTimeout)
        var last: KubeRolloutStatus?
        while true {
            let status = try call("reading Deployment \(name)") { try await cluster.deploymentStatus(namespace: namespace, name: name) }
            switch status {
            case .complete:
                output("       \(name) is ready (\(process.replicas)/\(process.replicas) available)")
                return
            case .failed(let reason, let message):
                throw UserFacingError(.conflict, "\(process.type) did not become ready: \(reason): \(message)")
            case .progressing(let updated, let available, let wanted):
                if status != last { output("       \(name): \(updated)/\(wanted) updated, \(available)/\(wanted) available") }
            }
            last = status
            guard Date() < deadline else {
                throw UserFacingError(.conflict, "\(process.type) did not become ready within \(Int(rolloutTimeout)) s (kubectl -n \(namespace) describe deployment \(name) says why)")
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Deletes the app's objects (by its label, in its namespace) that `keeping` does
    /// not have: a removed process type's Deployment, an old release's Secret and task Jobs.
    /// `run` Jobs and cron runs (Jobs a CronJob started, or `cron:run`'s) are left to
    /// their TTL and history limits: one may still be running, and a deploy must not kill it.
    func prune(keeping objects: [KubeObject], app: String, namespace: String, output: @escaping @Sendable (String) -> Void) throws {
        let kinds = KubeKind.rendered.filter { $0.kind != "Namespace" }
        let wanted = Set(objects.map { "\($0.kind)/\($0.name)" })
        let selector = [KubernetesRenderer.Label.app: KubeNames.labelValue(app)]
        let present = try call("listing \(app)'s objects") {
            try await cluster.list(kinds: kinds, namespace: namespace, labelSelector: selector)
        }
        let unwanted = present.filter { !wanted.contains("\($0.kind.kind)/\($0.name)") }
        // Whose Jobs they are is on the Jobs themselves (labels, owner, annotation): read only when a Job would go.
        var kept: Set<String> = []
        if unwanted.contains(where: { $0.kind.kind == "Job" }) {
            let jobs = try call("listing \(app)'s Jobs") { try await cluster.jobs(namespace: namespace, labelSelector: selector) }
            kept = Set(jobs.filter { $0.isCronRun || $0.labels[KubernetesRenderer.Label.task] == "run" }.map(\.name))
        }
        for object in unwanted.sorted(by: { ($0.kind.kind, $0.name) < ($1.kind.kind, $1.name) })
        where !(object.kind.kind == "Job" && kept.contains(object.name)) {
            try call("deleting \(object.kind.kind) \(object.name)") { try await cluster.delete(object) }
            output("-----> Removed \(object.kind.kind) \(object.name) (not in this release)")
        }
    }

    /// One cluster call from a plain thread, bounded (log follows excepted: a long task).
    @discardableResult
    func call<T: Sendable>(_ what: String, _ operation: @escaping @Sendable () async throws -> T) throws -> T {
        try waitFor(timeout: .seconds(Int64(max(taskTimeout, 60)) + 60), timedOut: "the cluster (\(what))", operation)
    }
}

/// The API client of a kubeconfig file, made at its first use.
final class DeferredCluster: KubernetesCluster, @unchecked Sendable {
    let path: String
    let context: String?
    private let lock = NSLock()
    private var client: KubernetesAPIClient?

    init(path: String, context: String?) {
        self.path = path
        self.context = context
    }

    private func get() throws -> KubernetesAPIClient {
        try lock.withLock {
            if let client { return client }
            let made = try KubernetesAPIClient(config: try Kubeconfig.load(path: path, context: context))
            client = made
            return made
        }
    }

    func apply(_ objects: [KubeObject], fieldManager: String) async throws { try await get().apply(objects, fieldManager: fieldManager) }
    func list(kinds: [KubeKind], namespace: String?, labelSelector: [String: String]) async throws -> [KubeObjectReference] {
        try await get().list(kinds: kinds, namespace: namespace, labelSelector: labelSelector)
    }
    func delete(_ object: KubeObjectReference) async throws { try await get().delete(object) }
    func deploymentStatus(namespace: String, name: String) async throws -> KubeRolloutStatus {
        try await get().deploymentStatus(namespace: namespace, name: name)
    }
    func jobStatus(namespace: String, name: String) async throws -> KubeJobStatus { try await get().jobStatus(namespace: namespace, name: name) }
    func jobLogs(namespace: String, name: String, output: @escaping @Sendable (String) -> Void) async throws {
        try await get().jobLogs(namespace: namespace, name: name, output: output)
    }
    func jobExitCode(namespace: String, name: String) async throws -> Int? { try await get().jobExitCode(namespace: namespace, name: name) }
    func jobPodPhase(namespace: String, name: String) async throws -> String? { try await get().jobPodPhase(namespace: namespace, name: name) }
    func podLogs(namespace: String, labelSelector: [String: String], tailLines: Int?, follow: Bool,
                 output: @escaping @Sendable (KubePodLine) -> Void) async throws {
        try await get().podLogs(namespace: namespace, labelSelector: labelSelector, tailLines: tailLines, follow: follow, output: output)
    }
    func deployments(namespace: String, labelSelector: [String: String]) async throws -> [KubeDeploymentSummary] {
        try await get().deployments(namespace: namespace, labelSelector: labelSelector)
    }
    func jobs(namespace: String, labelSelector: [String: String]) async throws -> [KubeJobSummary] {
        try await get().jobs(namespace: namespace, labelSelector: labelSelector)
    }
}
