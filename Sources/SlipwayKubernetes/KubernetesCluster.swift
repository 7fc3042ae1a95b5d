/// The seam to a cluster: what the deploy pipeline needs from the Kubernetes API, in
/// its own terms. Not implemented yet (issue 20's second part): an AsyncHTTPClient
/// client speaking server-side apply (`PATCH ... application/apply-patch+yaml`,
/// `fieldManager=slipway`, `force=true`), and an in-process fake API server for the
/// tests. The deploy integration renders a release (`KubernetesRenderer`), applies
/// the objects in their order (waiting on each predeploy Job in turn), waits for the
/// Deployments, then prunes what the app has that the release no longer renders.
public protocol KubernetesCluster: Sendable {
    /// Server-side apply of each object, in order, as `fieldManager`.
    func apply(_ objects: [KubeObject], fieldManager: String) async throws
    /// The objects of `kinds` in `namespace` (nil: cluster-wide) matching every label
    /// of `labelSelector` (e.g. `slipway.dev/app=web`), for prune and `ps:report`.
    func list(kinds: [KubeKind], namespace: String?, labelSelector: [String: String]) async throws -> [KubeObjectReference]
    /// Deletes one object (foreground propagation: a Deployment's pods go with it).
    func delete(_ object: KubeObjectReference) async throws
    /// A Deployment's rollout: done when its observed generation is current and every
    /// replica is updated and available; failed when its Progressing condition says so.
    func deploymentStatus(namespace: String, name: String) async throws -> KubeRolloutStatus
    /// A Job's state (a predeploy task, later `run`).
    func jobStatus(namespace: String, name: String) async throws -> KubeJobStatus
    /// The output of a Job's pod, as lines, for the deploy's output.
    func jobLogs(namespace: String, name: String, output: @escaping @Sendable (String) -> Void) async throws
}

/// A kind the pipeline lists and prunes, with the API path it lives under.
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
