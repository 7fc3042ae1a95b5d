import Foundation
import SlipwayCore

/// Renders one release of one app as Kubernetes objects: a pure function of a
/// `KubernetesAppSpec`, sorted and deterministic (the same spec, the same bytes).
///
/// **One namespace per app** (`slipway-<app>`, `KubeNames.namespace(of:)`), not per
/// tenant: an app changes hands (`acl:*`) without moving; its objects' names are its
/// own (`web`, `env-v3`) and never meet another app's; destroying an app is deleting
/// its namespace; a cluster admin can put a quota or a network policy on one app.
/// The price: a storage mounted by two apps is two claims on the cluster, not shared.
///
/// What it makes (every object labelled `app.kubernetes.io/managed-by: slipway`,
/// `slipway.dev/app`, `slipway.dev/release` and `slipway.dev/tenant`):
/// - the Namespace;
/// - Secret `env-v<release>` (the config), `tls` (the certificate), `registry` (pull credentials);
/// - a PersistentVolumeClaim per managed storage the app mounts (host paths are refused);
/// - Job `predeploy-<n>-v<release>` per predeploy task, to run in `n` order before the
///   switch, and `postdeploy-<n>-v<release>` per postdeploy task, to run after it (the
///   same pod but for its command: a task gets no more than the other), both with the
///   app-level limits a local task gets (run and cron Jobs: the `run` type's);
/// - a Deployment per process type (rolling update with maxUnavailable 0: the old
///   pods serve until the new are ready), and for `web` a Service and an Ingress;
/// - a CronJob `cron-<id>` per app.json cron entry.
public struct KubernetesRenderer: Sendable {
    /// What every object is labelled with; the applier lists and prunes by `app`.
    public enum Label {
        public static let managedBy = "app.kubernetes.io/managed-by"
        public static let app = "slipway.dev/app"
        public static let release = "slipway.dev/release"
        public static let tenant = "slipway.dev/tenant"
        /// On Deployments, their pods and the Service: the selector (with `app`).
        public static let processType = "slipway.dev/process-type"
        /// On deploy task Jobs: `predeploy` or `postdeploy` (`run` on `run` Jobs).
        public static let task = "slipway.dev/task"
    }
    /// On a Deployment's pod template: the last `ps:restart` of its type (as `kubectl
    /// rollout restart`'s `kubectl.kubernetes.io/restartedAt`): a new value replaces the pods.
    public static let restartedAtAnnotation = "slipway.dev/restarted-at"
    /// On deploy task Jobs: their place in their phase's run order, from 1.
    public static let orderAnnotation = "slipway.dev/order"
    /// The Secret holding the app's certificate (the Ingress's TLS).
    public static let tlsSecretName = "tls"
    /// The field manager server-side apply uses.
    public static let fieldManager = "slipway"
    /// The Service's port (the Ingress's backend).
    public static let servicePort = 80
    /// A claim's size when the storage sets none.
    public static let defaultClaimSize = "1Gi"

    /// Replace Secret values with `<redacted>` (for `k8s:render`: review without leaking).
    public var redactSecrets: Bool

    public init(redactSecrets: Bool = false) { self.redactSecrets = redactSecrets }

    /// The objects of `spec`, sorted (`KubeObject.kindOrder`, then name).
    /// Throws a `UserFacingError` for what a cluster cannot run (a host-path mount).
    public func render(_ spec: KubernetesAppSpec) throws -> [KubeObject] {
        for mount in spec.mounts {
            if case .hostPath(let path) = mount.source {
                throw UserFacingError.invalid("\(spec.app) mounts the host directory \(path) at \(mount.containerPath); the kubernetes scheduler cannot (pods run on other machines): storage:unmount \(spec.app) \(path):\(mount.containerPath), and use managed storage (storage:create) instead")
            }
        }
        let context = Context(spec: spec, redact: redactSecrets)
        var objects = [context.namespaceObject(), context.environmentSecret()]
        objects += context.claims()
        if let tls = context.tlsSecret() { objects.append(tls) }
        if let registry = context.registrySecret() { objects.append(registry) }
        objects += context.taskJobs("predeploy", spec.predeploy)
        objects += context.taskJobs("postdeploy", spec.postdeploy)
        for process in spec.processes { objects.append(context.deployment(process)) }
        if spec.processes.contains(where: { $0.type == "web" }) {
            objects.append(context.webService())
            if let ingress = context.ingress() { objects.append(ingress) }
        }
        objects += spec.cron.map(context.cronJob)
        return objects.sorted(by: KubeObject.ordered)
    }

    /// The names of the predeploy Jobs of `spec`, in the order they must run.
    public static func predeployJobNames(_ spec: KubernetesAppSpec) -> [String] {
        taskJobNames("predeploy", spec.predeploy, release: spec.release)
    }

    /// The names of the postdeploy Jobs of `spec`, in the order they must run.
    public static func postdeployJobNames(_ spec: KubernetesAppSpec) -> [String] {
        taskJobNames("postdeploy", spec.postdeploy, release: spec.release)
    }

    static func taskJobNames(_ phase: String, _ commands: [String], release: Int) -> [String] {
        commands.indices.map { KubeNames.label("\(phase)-\($0 + 1)-v\(release)") }
    }

    /// A Job running `command` (argv) once with `spec`'s image, env Secret and run-phase
    /// storage (`run` on a cluster), named `name`, labelled `slipway.dev/task: run`.
    public func runJob(_ spec: KubernetesAppSpec, name: String, command: [String]) -> KubeObject {
        Context(spec: spec, redact: redactSecrets).runJob(name: name, command: command)
    }

    /// The name of a process type's Deployment (and web's Service and Ingress).
    public static func deploymentName(_ type: String) -> String { KubeNames.label(type, startWithLetter: true) }
}

/// The shared pieces of one rendering.
private struct Context {
    let spec: KubernetesAppSpec
    let redact: Bool
    let namespace: String

    init(spec: KubernetesAppSpec, redact: Bool) {
        self.spec = spec
        self.redact = redact
        namespace = KubeNames.namespace(of: spec.app)
    }

    typealias Label = KubernetesRenderer.Label

    var labels: [String: String] {
        [Label.managedBy: "slipway", Label.app: KubeNames.labelValue(spec.app),
         Label.release: String(spec.release), Label.tenant: KubeNames.labelValue(spec.tenant)]
    }

    var environmentSecretName: String { KubeNames.label("env-v\(spec.release)") }
    let tlsSecretName = KubernetesRenderer.tlsSecretName
    let registrySecretName = "registry"

    func object(_ apiVersion: String, _ kind: String, _ name: String, labels extra: [String: String] = [:],
                annotations: [String: String] = [:], _ members: [String: KubeValue]) -> KubeObject {
        KubeObject(apiVersion: apiVersion, kind: kind, name: name, namespace: kind == "Namespace" ? nil : namespace,
                   labels: labels.merging(extra) { _, new in new }, annotations: annotations, members: members)
    }

    func namespaceObject() -> KubeObject { object("v1", "Namespace", namespace, [:]) }

    func secretData(_ values: [String: String]) -> KubeValue {
        .object(values.mapValues { .string(redact ? "<redacted>" : Data($0.utf8).base64EncodedString()) })
    }

    func environmentSecret() -> KubeObject {
        object("v1", "Secret", environmentSecretName, ["type": "Opaque", "data": secretData(spec.environment)])
    }

    func tlsSecret() -> KubeObject? {
        guard let certificate = spec.certificate else { return nil }
        return object("v1", "Secret", tlsSecretName, [
            "type": "kubernetes.io/tls",
            "data": secretData(["tls.crt": certificate.certificatePEM, "tls.key": certificate.keyPEM]),
        ])
    }

    func registrySecret() -> KubeObject? {
        guard let pull = spec.pullSecret else { return nil }
        return object("v1", "Secret", registrySecretName, [
            "type": "kubernetes.io/dockerconfigjson", "data": secretData([".dockerconfigjson": pull.dockerConfigJSON]),
        ])
    }

    /// Managed storage names, each once, whatever paths and phases mount it.
    var storageNames: [String] {
        Array(Set(spec.mounts.compactMap { mount -> String? in
            if case .storage(let name) = mount.source { return name }
            return nil
        })).sorted()
    }

    func claimName(_ storage: String) -> String { KubeNames.label(storage) }

    func claims() -> [KubeObject] {
        storageNames.map { storage in
            var claim: [String: KubeValue] = [
                "accessModes": ["ReadWriteOnce"],
                "resources": ["requests": ["storage": .string(KubernetesRenderer.defaultClaimSize)]],
            ]
            if let storageClass = spec.storageClass { claim["storageClassName"] = .string(storageClass) }
            return object("v1", "PersistentVolumeClaim", claimName(storage), annotations: ["slipway.dev/storage": storage], ["spec": .object(claim)])
        }
    }

    /// Volumes and their mounts for the mounts of `phase`.
    func volumes(for phase: MountPhase) -> (volumes: [KubeValue], mounts: [KubeValue]) {
        let wanted = spec.mounts.filter { $0.phases.contains(phase) }
        var names: [String] = []
        var mounts: [KubeValue] = []
        for mount in wanted.sorted(by: { $0.containerPath < $1.containerPath }) {
            guard case .storage(let storage) = mount.source else { continue }
            let volume = claimName(storage)
            if !names.contains(volume) { names.append(volume) }
            mounts.append(["name": .string(volume), "mountPath": .string(mount.containerPath), "readOnly": .bool(mount.readonly)])
        }
        // A claim mounted read-write anywhere is attached read-write.
        let volumes: [KubeValue] = names.sorted().map { volume in
            ["name": .string(volume), "persistentVolumeClaim": ["claimName": .string(volume)]]
        }
        return (volumes, mounts)
    }

    /// A pod's spec: one container `name` running `command` with the app's env.
    func podSpec(container name: String, command: [String]?, phase: MountPhase, restartPolicy: String?,
                 ports: [KubeValue] = [], resources: KubeValue? = nil, probes: [String: KubeValue] = [:]) -> KubeValue {
        let (volumes, mounts) = volumes(for: phase)
        var container: [String: KubeValue] = [
            "name": .string(name),
            "image": .string(spec.image),
            "envFrom": [["secretRef": ["name": .string(environmentSecretName)]]],
            // The image's user and files are the tenant's; nothing in the pod may gain privileges.
            "securityContext": ["allowPrivilegeEscalation": false],
        ]
        if let command { container["command"] = KubeValue(command) }
        if !ports.isEmpty { container["ports"] = .array(ports) }
        if let resources { container["resources"] = resources }
        if !mounts.isEmpty { container["volumeMounts"] = .array(mounts) }
        for (key, probe) in probes { container[key] = probe }
        var pod: [String: KubeValue] = [
            "containers": [.object(container)],
            // A tenant's code has no business with the cluster's API.
            "automountServiceAccountToken": false,
            // Service links would put every Service of the namespace in the env.
            "enableServiceLinks": false,
        ]
        if let restartPolicy { pod["restartPolicy"] = .string(restartPolicy) }
        if !volumes.isEmpty { pod["volumes"] = .array(volumes) }
        if spec.pullSecret != nil { pod["imagePullSecrets"] = [["name": .string(registrySecretName)]] }
        return .object(pod)
    }

    func shell(_ command: String) -> [String]? { command.isEmpty ? nil : ["/bin/sh", "-c", command] }

    func resources(_ limits: ResourceLimits) -> KubeValue? {
        var limit: [String: KubeValue] = [:], request: [String: KubeValue] = [:]
        if let bytes = limits.memoryBytes { limit["memory"] = .string(String(bytes)) }
        if let nano = limits.nanoCPUs { limit["cpu"] = .string("\(max(1, nano / 1_000_000))m") }
        if let bytes = limits.memoryReservationBytes { request["memory"] = .string(String(bytes)) }
        var out: [String: KubeValue] = [:]
        if !limit.isEmpty { out["limits"] = .object(limit) }
        if !request.isEmpty { out["requests"] = .object(request) }
        return out.isEmpty ? nil : .object(out)
    }

    /// app.json checks as probes: `type` startup, liveness or readiness (none:
    /// readiness); the first of each kind. A path is an HTTP GET, none a TCP connect.
    /// `content` has no probe equivalent and is not checked on a cluster.
    func probes(_ process: KubernetesAppSpec.Process) -> [String: KubeValue] {
        guard !process.checksOff else { return [:] }
        var probes: [String: KubeValue] = [:]
        for check in process.checks {
            let key: String
            switch check.type?.lowercased() {
            case "startup": key = "startupProbe"
            case "liveness": key = "livenessProbe"
            default: key = "readinessProbe"
            }
            guard probes[key] == nil else { continue }
            let port = KubeValue(check.port ?? spec.port)
            var probe: [String: KubeValue] = check.path.map { ["httpGet": ["path": .string($0), "port": port]] } ?? ["tcpSocket": ["port": port]]
            if let attempts = check.attempts { probe["failureThreshold"] = KubeValue(attempts) }
            if let timeout = check.timeout { probe["timeoutSeconds"] = KubeValue(timeout) }
            if let wait = check.wait { probe["periodSeconds"] = KubeValue(max(1, wait)) }
            if let delay = check.initialDelay { probe["initialDelaySeconds"] = KubeValue(delay) }
            probes[key] = .object(probe)
        }
        // web without checks: ready once its port accepts connections, as the local rollout waits.
        if process.type == "web", probes["readinessProbe"] == nil {
            probes["readinessProbe"] = ["tcpSocket": ["port": KubeValue(spec.port)]]
        }
        return probes
    }

    func deployment(_ process: KubernetesAppSpec.Process) -> KubeObject {
        let name = KubernetesRenderer.deploymentName(process.type)
        let selector = [Label.app: KubeNames.labelValue(spec.app), Label.processType: KubeNames.labelValue(process.type)]
        let ports: [KubeValue] = process.type == "web" ? [["name": "http", "containerPort": KubeValue(spec.port), "protocol": "TCP"]] : []
        let pod = podSpec(container: name, command: shell(process.command), phase: .deploy, restartPolicy: nil,
                          ports: ports, resources: resources(process.resources), probes: probes(process))
        var template: [String: KubeValue] = ["labels": KubeValue(labels.merging(selector) { _, new in new })]
        if let restartedAt = process.restartedAt {
            template["annotations"] = [KubernetesRenderer.restartedAtAnnotation: .string(restartedAt)]
        }
        return object("apps/v1", "Deployment", name, labels: [Label.processType: KubeNames.labelValue(process.type)], [
            "spec": [
                "replicas": KubeValue(process.replicas),
                "revisionHistoryLimit": 5,
                "selector": ["matchLabels": KubeValue(selector)],
                // The old pods stay until the new ones are ready.
                "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": 0, "maxSurge": 1]],
                "template": ["metadata": .object(template), "spec": pod],
            ],
        ])
    }

    func webService() -> KubeObject {
        object("v1", "Service", KubernetesRenderer.deploymentName("web"), labels: [Label.processType: "web"], [
            "spec": [
                "type": "ClusterIP",
                "selector": KubeValue([Label.app: KubeNames.labelValue(spec.app), Label.processType: "web"]),
                "ports": [["name": "http", "port": KubeValue(KubernetesRenderer.servicePort), "targetPort": "http", "protocol": "TCP"]],
            ],
        ])
    }

    func ingress() -> KubeObject? {
        guard !spec.domains.isEmpty else { return nil }
        let service = KubernetesRenderer.deploymentName("web")
        let rules: [KubeValue] = spec.domains.sorted().map { host in
            ["host": .string(host), "http": ["paths": [[
                "path": "/", "pathType": "Prefix",
                "backend": ["service": ["name": .string(service), "port": ["number": KubeValue(KubernetesRenderer.servicePort)]]],
            ]]]]
        }
        var ingress: [String: KubeValue] = ["rules": .array(rules)]
        if let certificate = spec.certificate, !certificate.names.isEmpty {
            ingress["tls"] = [["hosts": KubeValue(certificate.names.sorted()), "secretName": .string(tlsSecretName)]]
        }
        if let ingressClass = spec.ingressClass { ingress["ingressClassName"] = .string(ingressClass) }
        return object("networking.k8s.io/v1", "Ingress", service, labels: [Label.processType: "web"], ["spec": .object(ingress)])
    }

    /// The Jobs of one deploy task phase (`predeploy`, `postdeploy`), one per command.
    func taskJobs(_ phase: String, _ commands: [String]) -> [KubeObject] {
        zip(KubernetesRenderer.taskJobNames(phase, commands, release: spec.release), commands).enumerated().map { index, job in
            let (name, command) = job
            let extra = [Label.task: phase]
            return object("batch/v1", "Job", name, labels: extra, annotations: [KubernetesRenderer.orderAnnotation: String(index + 1)], [
                "spec": [
                    // No retries, as locally: a failed predeploy fails the deploy; a failed postdeploy is reported once.
                    "backoffLimit": 0,
                    "ttlSecondsAfterFinished": 86400,
                    "template": [
                        "metadata": ["labels": KubeValue(labels.merging(extra) { _, new in new })],
                        "spec": podSpec(container: phase, command: shell(command), phase: .deploy, restartPolicy: "Never",
                                        resources: resources(spec.taskResources)),
                    ],
                ],
            ])
        }
    }

    func runJob(name: String, command: [String]) -> KubeObject {
        let extra = [Label.task: "run"]
        return object("batch/v1", "Job", name, labels: extra, [
            "spec": [
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 3600,
                "template": [
                    "metadata": ["labels": KubeValue(labels.merging(extra) { _, new in new })],
                    "spec": podSpec(container: "run", command: command, phase: .run, restartPolicy: "Never", resources: resources(spec.runResources)),
                ],
            ],
        ])
    }

    func cronJob(_ entry: CronEntry) -> KubeObject {
        let name = KubeNames.label("cron-\(entry.id)", maximum: KubeNames.cronJobMaximum)
        let policy: String = switch entry.concurrencyPolicy {
        case .allow: "Allow"
        case .forbid: "Forbid"
        case .replace: "Replace"
        }
        let job: [String: KubeValue] = [
            "backoffLimit": 0,
            "activeDeadlineSeconds": KubeValue(entry.timeout ?? spec.cronTimeout),
            "template": [
                "metadata": ["labels": KubeValue(labels)],
                // Cron commands run without a shell, as locally.
                "spec": podSpec(container: "cron", command: entry.arguments, phase: .run, restartPolicy: "Never", resources: resources(spec.runResources)),
            ],
        ]
        return object("batch/v1", "CronJob", name, annotations: ["slipway.dev/command": entry.command], [
            "spec": [
                "schedule": .string(entry.schedule),
                "timeZone": .string(spec.cronTimeZone),
                "concurrencyPolicy": .string(policy),
                "jobTemplate": ["metadata": ["labels": KubeValue(labels)], "spec": .object(job)],
            ],
        ])
    }
}
