import Foundation

/// The seam to a cluster: what the deploy pipeline needs from the Kubernetes API, in
/// its own terms. `KubernetesAPIClient` implements it over HTTPS (server-side apply:
/// `PATCH ... application/apply-patch+yaml`, `fieldManager=slipway`, `force=true`);
/// the tests run it against `KubernetesFakeAPI`. `KubernetesDeployer` renders a
/// release (`KubernetesRenderer`), applies the objects in their order (waiting on each
/// predeploy Job in turn), waits for the Deployments, then prunes what the app has
/// that the release no longer renders.
public protocol KubernetesCluster: Sendable {
    /// Server-side apply of each object, in order, as `fieldManager`.
    func apply(_ objects: [KubeObject], fieldManager: String) async throws
    /// The objects of `kinds` in `namespace` (nil: cluster-wide) matching every label
    /// of `labelSelector` (e.g. `slipway.dev/app=web`), for prune and `ps:report`.
    func list(kinds: [KubeKind], namespace: String?, labelSelector: [String: String]) async throws -> [KubeObjectReference]
    /// Deletes one object (background propagation: a Deployment's pods go after it).
    /// One that is gone already is fine.
    func delete(_ object: KubeObjectReference) async throws
    /// A Deployment's rollout: done when its observed generation is current and every
    /// replica is updated and available; failed when its Progressing condition says so.
    func deploymentStatus(namespace: String, name: String) async throws -> KubeRolloutStatus
    /// A Job's state (a predeploy task, later `run`).
    func jobStatus(namespace: String, name: String) async throws -> KubeJobStatus
    /// The output of a Job's pod, as lines, for the deploy's output (followed until
    /// the pod's container ends).
    func jobLogs(namespace: String, name: String, output: @escaping @Sendable (String) -> Void) async throws
    /// The exit status of a finished Job's pod (nil: no pod, or it has not ended).
    func jobExitCode(namespace: String, name: String) async throws -> Int?
    /// The phase of a Job's newest pod (`Pending`, `Running`, `Succeeded`, `Failed`;
    /// nil: no pod yet), so `run` follows its output once there is some.
    func jobPodPhase(namespace: String, name: String) async throws -> String?
    /// The logs of the pods matching `labelSelector` (`logs APP`): `tailLines` from the
    /// end (nil: all), followed while the pods run when `follow`; each line with its
    /// pod's name and labels.
    func podLogs(namespace: String, labelSelector: [String: String], tailLines: Int?, follow: Bool,
                 output: @escaping @Sendable (KubePodLine) -> Void) async throws
    /// The Deployments matching `labelSelector`, with their replicas (`ps:report`).
    func deployments(namespace: String, labelSelector: [String: String]) async throws -> [KubeDeploymentSummary]
    /// The Jobs matching `labelSelector` in `namespace`, with their command, start and
    /// state (`run:list`); sorted by name.
    func jobs(namespace: String, labelSelector: [String: String]) async throws -> [KubeJobSummary]
}

/// A Job as `run:list` shows it.
public struct KubeJobSummary: Sendable, Equatable {
    public let name: String
    public let labels: [String: String]
    /// Its pod's container command (argv; empty: the image's own).
    public let command: [String]
    /// `status.startTime`, else `metadata.creationTimestamp`.
    public let started: Date?
    public let status: KubeJobStatus
    public let annotations: [String: String]
    /// The kinds of its `ownerReferences` (`CronJob` for a Job its CronJob started).
    public let ownerKinds: [String]

    public init(name: String, labels: [String: String], command: [String], started: Date?, status: KubeJobStatus,
                annotations: [String: String] = [:], ownerKinds: [String] = []) {
        self.name = name
        self.labels = labels
        self.command = command
        self.started = started
        self.status = status
        self.annotations = annotations
        self.ownerKinds = ownerKinds
    }

    /// A cron run: started by its CronJob, or by `cron:run` (`kubectl create job --from`'s annotation).
    public var isCronRun: Bool {
        ownerKinds.contains("CronJob") || annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    }
}

/// One line of a pod's log and whose it is.
public struct KubePodLine: Sendable, Equatable {
    public let pod: String
    public let labels: [String: String]
    public let line: String

    public init(pod: String, labels: [String: String], line: String) {
        self.pod = pod
        self.labels = labels
        self.line = line
    }
}

/// A Deployment as `ps:report` shows it: desired (`spec.replicas`) and ready replicas.
public struct KubeDeploymentSummary: Sendable, Equatable {
    public let name: String
    public let labels: [String: String]
    public let desired: Int
    public let ready: Int

    public init(name: String, labels: [String: String], desired: Int, ready: Int) {
        self.name = name
        self.labels = labels
        self.desired = desired
        self.ready = ready
    }
}

/// A kind the pipeline lists and prunes, with the API path it lives under.
/// `apiVersion` `v1` is the core group (`/api/v1`), others are `/apis/<group>/<version>`.
public struct KubeKind: Sendable, Hashable {
    public let apiVersion: String
    public let kind: String
    /// The plural resource name in the URL (`deployments`).
    public let resource: String

    public init(apiVersion: String, kind: String, resource: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.resource = resource
    }

    /// Every kind `KubernetesRenderer` makes, in its apply order.
    public static let rendered: [KubeKind] = [
        KubeKind(apiVersion: "v1", kind: "Namespace", resource: "namespaces"),
        KubeKind(apiVersion: "v1", kind: "Secret", resource: "secrets"),
        KubeKind(apiVersion: "v1", kind: "PersistentVolumeClaim", resource: "persistentvolumeclaims"),
        KubeKind(apiVersion: "batch/v1", kind: "Job", resource: "jobs"),
        KubeKind(apiVersion: "v1", kind: "Service", resource: "services"),
        KubeKind(apiVersion: "apps/v1", kind: "Deployment", resource: "deployments"),
        KubeKind(apiVersion: "networking.k8s.io/v1", kind: "Ingress", resource: "ingresses"),
        KubeKind(apiVersion: "batch/v1", kind: "CronJob", resource: "cronjobs"),
    ]

    /// The kind of a rendered object (any other: its lowercased plural, `<kind>s`).
    public static func of(_ object: KubeObject) -> KubeKind {
        rendered.first { $0.kind == object.kind && $0.apiVersion == object.apiVersion }
            ?? KubeKind(apiVersion: object.apiVersion, kind: object.kind, resource: object.kind.lowercased() + "s")
    }

    static let pod = KubeKind(apiVersion: "v1", kind: "Pod", resource: "pods")

    /// The URL path of the collection (`name` nil) or of one object.
    public func path(namespace: String?, name: String? = nil) -> String {
        var path = apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)"
        if let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(resource)"
        if let name { path += "/\(name)" }
        return path
    }
}

/// Which object: enough to delete it or compare it with a rendering.
public struct KubeObjectReference: Sendable, Hashable {
    public let kind: KubeKind
    public let namespace: String?
    public let name: String

    public init(kind: KubeKind, namespace: String?, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }
}

public enum KubeRolloutStatus: Sendable, Equatable {
    case progressing(updated: Int, available: Int, wanted: Int)
    case complete
    /// The Progressing condition's reason and message (e.g. ProgressDeadlineExceeded).
    case failed(reason: String, message: String)
}

public enum KubeJobStatus: Sendable, Equatable {
    case running
    case succeeded
    case failed(reason: String)
}
