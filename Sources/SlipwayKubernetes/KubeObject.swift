/// One rendered Kubernetes object: its identity and its whole body (metadata
/// included), as server-side apply sends it.
public struct KubeObject: Sendable, Equatable {
    public let apiVersion: String
    public let kind: String
    public let name: String
    /// nil for cluster-scoped objects (the Namespace).
    public let namespace: String?
    public let labels: [String: String]
    /// The full object: `apiVersion`, `kind`, `metadata` and the rest.
    public let body: KubeValue

    /// Builds the body from `spec` (the members after `metadata`).
    public init(apiVersion: String, kind: String, name: String, namespace: String?, labels: [String: String],
                annotations: [String: String] = [:], members: [String: KubeValue]) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.labels = labels
        var metadata: [String: KubeValue] = ["name": .string(name), "labels": KubeValue(labels)]
        if let namespace { metadata["namespace"] = .string(namespace) }
        if !annotations.isEmpty { metadata["annotations"] = KubeValue(annotations) }
        var body = members
        body["apiVersion"] = .string(apiVersion)
        body["kind"] = .string(kind)
        body["metadata"] = .object(metadata)
        self.body = .object(body)
    }

    /// The order objects are listed (and applied) in: what others refer to first.
    /// Predeploy Jobs come before the Deployments they must finish ahead of.
    static let kindOrder = ["Namespace", "Secret", "PersistentVolumeClaim", "Job", "Service", "Deployment", "Ingress", "CronJob"]

    /// Sorts by kind (`kindOrder`), then namespace, then name: a total order, so a
    /// rendering is the same list every time.
    static func ordered(_ a: KubeObject, _ b: KubeObject) -> Bool {
        let rank = { (kind: String) in kindOrder.firstIndex(of: kind) ?? kindOrder.count }
        if rank(a.kind) != rank(b.kind) { return rank(a.kind) < rank(b.kind) }
        if a.kind != b.kind { return a.kind < b.kind }
        if (a.namespace ?? "") != (b.namespace ?? "") { return (a.namespace ?? "") < (b.namespace ?? "") }
        return a.name < b.name
    }

    /// One YAML document (no `---`).
    public func yaml() -> String { body.yaml() }
    /// Compact, key-sorted JSON on one line.
    public func json() -> String { body.json() }
}

extension Array where Element == KubeObject {
    /// YAML documents separated by `---`, as `kubectl apply -f` reads them.
    public func yamlDocuments() -> String {
        map { "---\n" + $0.yaml() }.joined()
    }
}
