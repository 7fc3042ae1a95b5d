import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SlipwayKubernetes

/// An in-process Kubernetes API server on a loopback port, for tests: it follows the
/// real protocol for the calls Slipway makes, and answers in the shapes of the
/// documented responses in `Fixtures/` (see its README for where each comes from).
///
/// - `PATCH` with `application/apply-patch+yaml` (JSON bodies; JSON is YAML): server-side
///   apply. Creates (201) or merges (200); `fieldManager` is required; `managedFields`
///   records the manager; `metadata.generation` moves when `spec` changes and
///   `resourceVersion` on every change; a field owned by another manager is a 409
///   Conflict unless `force=true`; an invalid name is a 422 Invalid; a namespaced
///   object in a missing namespace is a 404; a Job's template is immutable (422).
/// - `GET` of a collection with `labelSelector` (equality terms), or of one object (404).
/// - `DELETE` (a Namespace takes its objects, a Job its pods).
/// - A "controller": Deployments become ready after `pollsToReady` reads (or never, then
///   ProgressDeadlineExceeded), Jobs run at once to the outcome `jobOutcome` gives,
///   with a pod labelled `job-name` and its log at `pods/<pod>/log`. A ready Deployment
///   has its replicas as pods (the template's labels, a log per `podLog`); `tailLines` is honoured.
public final class FakeKubernetesAPI: @unchecked Sendable {
    /// How a Deployment's rollout goes.
    public enum Rollout: Sendable {
        /// Ready after this many reads of the Deployment.
        case ready(afterReads: Int)
        /// Progressing False, ProgressDeadlineExceeded, after this many reads.
        case deadlineExceeded(afterReads: Int)
        /// Progressing for ever (the client's own timeout must end it).
        case stuck
    }

    /// What a Job's one pod does.
    public struct JobOutcome: Sendable {
        public var exitCode: Int
        public var log: [String]
        /// The pod keeps running (status `active: 1`, no condition) until the Job is deleted.
        public var running: Bool
        public init(exitCode: Int = 0, log: [String] = [], running: Bool = false) {
            self.exitCode = exitCode
            self.log = log
            self.running = running
        }
    }

    /// How the server authenticates clients, as a real API server does: a bearer token,
    /// a client certificate its CA signed, either one; or nobody (anonymous allowed).
    /// Without `tls` it speaks plain HTTP (nothing but the token can be checked).
    public struct Auth: Sendable {
        public var token: String?
        /// Ask for a client certificate and verify one given against `FakeCertificates`'
        /// cluster CA (a certificate it did not sign fails the handshake); a request
        /// without a token and without a verified certificate is a 401.
        public var clientCertificates: Bool
        public var tls: Bool

        public init(token: String? = nil, clientCertificates: Bool = false, tls: Bool = true) {
            self.token = token
            self.clientCertificates = clientCertificates
            self.tls = tls
        }
    }

    public let port: Int
    public let auth: Auth
    public var url: String { "\(auth.tls ? "https" : "http")://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private var objects: [String: KubeValue] = [:]
    private var reads: [String: Int] = [:]
    private var logs: [String: String] = [:]
    private var resourceVersion = 1000
    private var requestLog: [String] = []
    private var rolloutOf: @Sendable (String) -> Rollout = { _ in .ready(afterReads: 1) }
    private var jobOutcomeOf: @Sendable (KubeValue) -> JobOutcome = { _ in JobOutcome() }
    private var podLogOf: @Sendable (_ deployment: String, _ index: Int) -> [String] = { name, index in ["\(name) replica \(index) listening"] }

    /// Starts a server on a free loopback port over TLS (`FakeCertificates.shared`'s
    /// server certificate). `token`: the bearer token it requires (nil: none).
    public static func start(token: String? = nil) throws -> FakeKubernetesAPI {
        try start(Auth(token: token))
    }

    /// Starts a server on a free loopback port authenticating as `auth` says.
    public static func start(_ auth: Auth) throws -> FakeKubernetesAPI {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = HandlerBox()
        var tls: NIOSSLContext?
        if auth.tls {
            let certificates = FakeCertificates.shared
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificates.serverPEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(certificates.serverKeyPEM.utf8), format: .pem)))
            if auth.clientCertificates {
                // As kube-apiserver: a client certificate is asked for, verified when given, not required.
                configuration.certificateVerification = .optionalVerification
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(certificates.caPEM.utf8)))
            }
            tls = try NIOSSLContext(configuration: configuration)
        }
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [tls] channel in
                do {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(box: box))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let server = FakeKubernetesAPI(group: group, channel: channel, port: channel.localAddress?.port ?? 0, auth: auth)
        box.server = server
        return server
    }

    private init(group: MultiThreadedEventLoopGroup, channel: Channel, port: Int, auth: Auth) {
        self.group = group
        self.channel = channel
        self.port = port
        self.auth = auth
    }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// A kubeconfig for this server: its CA, and its token or the client certificate
    /// the CA signed, as the server authenticates.
    public var kubeconfig: Kubeconfig {
        let certificates = auth.tls ? FakeCertificates.shared : nil
        let client = auth.clientCertificates && auth.token == nil
        return Kubeconfig(server: url, certificateAuthorityPEM: certificates?.caPEM, token: auth.token,
                          clientCertificatePEM: client ? certificates?.clientPEM : nil, clientKeyPEM: client ? certificates?.clientKeyPEM : nil,
                          context: "fake")
    }

    /// The same as kubeconfig YAML with the PEMs inline (`*-data`), as a file holds it.
    public var kubeconfigYAML: String {
        let config = kubeconfig
        func data(_ pem: String?) -> String { Data((pem ?? "").utf8).base64EncodedString() }
        var cluster = "server: \"\(config.server)\""
        if config.certificateAuthorityPEM != nil { cluster += ", certificate-authority-data: \(data(config.certificateAuthorityPEM))" }
        var user: [String] = []
        if let token = config.token { user.append("token: \(token)") }
        if config.clientCertificatePEM != nil {
            user.append("client-certificate-data: \(data(config.clientCertificatePEM))")
            user.append("client-key-data: \(data(config.clientKeyPEM))")
        }
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster: {\(cluster)}
            users:
            - name: robot
              user: {\(user.joined(separator: ", "))}
            contexts:
            - name: fake
              context: {cluster: fake, user: robot}
            current-context: fake

            """
    }

    // MARK: Controls and inspection

    public func setRollout(_ rollout: @escaping @Sendable (String) -> Rollout) { lock.withLock { rolloutOf = rollout } }
    public func setJobOutcome(_ outcome: @escaping @Sendable (KubeValue) -> JobOutcome) { lock.withLock { jobOutcomeOf = outcome } }
    /// What the pod `index` of a Deployment writes (set before it becomes ready).
    public func setPodLog(_ log: @escaping @Sendable (_ deployment: String, _ index: Int) -> [String]) { lock.withLock { podLogOf = log } }

    /// Every request as `METHOD path?query`, in order.
    public var requests: [String] { lock.withLock { requestLog } }

    /// The stored object at an API path (`/apis/apps/v1/namespaces/slipway-web/deployments/web`).
    public func object(at path: String) -> KubeValue? { lock.withLock { objects[path] } }

    /// The paths of every stored object, sorted.
    public var paths: [String] { lock.withLock { objects.keys.sorted() } }

    /// Plays another field manager's update (`kubectl scale`, `kubectl edit`): sets
    /// `spec.<field>` and records `manager` as owning it (operation Update).
    public func edit(at path: String, specField field: String, to value: KubeValue, manager: String) {
        lock.withLock {
            guard var object = objects[path], case .object(var spec)? = object["spec"] else { return }
            spec[field] = value
            object = set(object, "spec", .object(spec))
            var managed = managedFields(object)
            managed.append(["manager": .string(manager), "operation": "Update", "apiVersion": object["apiVersion"] ?? "v1",
                            "fieldsType": "FieldsV1", "fieldsV1": ["f:spec": .object(["f:\(field)": .object([:])])]])
            object = setMetadata(object, "managedFields", .array(managed))
            object = bump(object, specChanged: true)
            objects[path] = object
        }
    }

    /// Plays the CronJob controller at a schedule time: creates Job `<cronjob>-<suffix>`
    /// from the CronJob's `jobTemplate` (its labels and spec), owned by the CronJob
    /// (`ownerReferences`, controller true), and runs it. Returns the Job's path; nil
    /// when there is no such CronJob.
    @discardableResult
    public func scheduleCronJob(at cronJobPath: String, suffix: String = "29000000") -> String? {
        lock.withLock {
            guard let cronJob = objects[cronJobPath], let template = cronJob["spec"]?["jobTemplate"],
                  let cronName = cronJob["metadata"]?["name"]?.stringValue,
                  let namespace = cronJob["metadata"]?["namespace"]?.stringValue else { return nil }
            let name = "\(cronName)-\(suffix)"
            resourceVersion += 1
            let owner: KubeValue = ["apiVersion": "batch/v1", "kind": "CronJob", "name": .string(cronName),
                                    "uid": cronJob["metadata"]?["uid"] ?? "", "controller": true, "blockOwnerDeletion": true]
            let job: KubeValue = ["apiVersion": "batch/v1", "kind": "Job",
                                  "metadata": ["name": .string(name), "namespace": .string(namespace),
                                               "labels": template["metadata"]?["labels"] ?? .object([:]),
                                               "ownerReferences": [owner], "uid": .string(UUID().uuidString.lowercased()),
                                               "resourceVersion": .string(String(resourceVersion)),
                                               "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1],
                                  "spec": template["spec"] ?? .object([:])]
            let path = "/apis/batch/v1/namespaces/\(namespace)/jobs/\(name)"
            objects[path] = job
            runController(path)
            return path
        }
    }

    // MARK: Fixtures

    static func fixture(_ name: String) -> KubeValue {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures")
                ?? Bundle.module.url(forResource: name, withExtension: "json"),
              let data = try? Data(contentsOf: url), let any = try? JSONSerialization.jsonObject(with: data) else {
            fatalError("missing fixture \(name).json")
        }
        return KubeValue.fromJSON(any)
    }

    // MARK: Requests

    struct Answer {
        var status: Int
        var contentType = "application/json"
        var body: String
        static func json(_ status: Int, _ value: KubeValue) -> Answer { Answer(status: status, body: value.json()) }
    }

    /// One request, start to end, under the lock.
    /// `clientCertificate`: the connection presented one the handshake verified.
    func handle(method: String, uri: String, headers: HTTPHeaders, body: Data, clientCertificate: Bool = false) -> Answer {
        lock.withLock {
            requestLog.append("\(method) \(uri)")
            let byToken = auth.token.map { headers.first(name: "Authorization") == "Bearer \($0)" } ?? false
            let byCertificate = auth.clientCertificates && clientCertificate
            if auth.token != nil || auth.clientCertificates, !byToken, !byCertificate {
                return .json(401, Self.fixture("status-unauthorized"))
            }
            let components = URLComponents(string: uri)
            let query = Dictionary((components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
            guard let route = Route(path: components?.path ?? uri) else {
                return .json(404, status(404, "NotFound", "the server could not find the requested resource", details: [:]))
            }
            switch (method, route.name, route.subresource) {
            case ("PATCH", let name?, nil): return apply(route, name: name, query: query, headers: headers, body: body)
            case ("GET", nil, nil): return list(route, selector: query["labelSelector"] ?? "")
            case ("GET", let name?, nil): return get(route, name: name)
            case ("GET", let name?, "log"): return log(route, pod: name, tailLines: query["tailLines"].flatMap { Int($0) })
            case ("DELETE", let name?, nil): return delete(route, name: name, propagationPolicy: query["propagationPolicy"])
            default:
                return .json(405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", details: [:]))
            }
        }
    }

    /// An API path taken apart.
    struct Route {
        var prefix: String     // "/api/v1" or "/apis/apps/v1"
        var apiVersion: String // "v1", "apps/v1"
        var namespace: String?
        var resource: String
        var name: String?
        var subresource: String?

        init?(path: String) {
            var parts = path.split(separator: "/").map(String.init)
            if parts.first == "api", parts.count >= 2 {
                prefix = "/api/\(parts[1])"; apiVersion = parts[1]; parts.removeFirst(2)
            } else if parts.first == "apis", parts.count >= 3 {
                prefix = "/apis/\(parts[1])/\(parts[2])"; apiVersion = "\(parts[1])/\(parts[2])"; parts.removeFirst(3)
            } else { return nil }
            if parts.first == "namespaces", parts.count >= 3 {
                namespace = parts[1]; parts.removeFirst(2)
            }
            guard let resource = parts.first else { return nil }
            self.resource = resource
            name = parts.count > 1 ? parts[1] : nil
            subresource = parts.count > 2 ? parts[2] : nil
            if parts.count > 3 { return nil }
        }

        func path(_ name: String) -> String {
            prefix + (namespace.map { "/namespaces/\($0)" } ?? "") + "/\(resource)/\(name)"
        }
        var collection: String { prefix + (namespace.map { "/namespaces/\($0)" } ?? "") + "/\(resource)/" }
        var group: String { apiVersion.contains("/") ? String(apiVersion.split(separator: "/")[0]) : "" }
        /// `deployments.apps` as messages name it.
        var qualified: String { group.isEmpty ? resource : "\(resource).\(group)" }
    }

    private func status(_ code: Int, _ reason: String, _ message: String, details: [String: KubeValue]) -> KubeValue {
        var value = Self.fixture("status-not-found")
        value = set(value, "code", .int(Int64(code)))
        value = set(value, "reason", .string(reason))
        value = set(value, "message", .string(message))
        return set(value, "details", .object(details))
    }

    private func notFound(_ route: Route, _ name: String) -> Answer {
        var details: [String: KubeValue] = ["name": .string(name), "kind": .string(route.resource)]
        if !route.group.isEmpty { details["group"] = .string(route.group) }
        return .json(404, status(404, "NotFound", "\(route.qualified) \"\(name)\" not found", details: details))
    }

    private func apply(_ route: Route, name: String, query: [String: String], headers: HTTPHeaders, body: Data) -> Answer {
        guard headers.first(name: "Content-Type") == "application/apply-patch+yaml" else {
            return .json(415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml", details: [:]))
        }
        guard let manager = query["fieldManager"], !manager.isEmpty else {
            return .json(400, status(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch", details: [:]))
        }
        guard let any = try? JSONSerialization.jsonObject(with: body), case .object = KubeValue.fromJSON(any) else {
            return .json(400, status(400, "BadRequest", "error decoding YAML: the body is not an object", details: [:]))
        }
        var applied = KubeValue.fromJSON(any)
        let kind = applied["kind"]?.stringValue ?? ""
        guard applied["apiVersion"]?.stringValue == route.apiVersion, applied["metadata"]?["name"]?.stringValue == name else {
            return .json(400, status(400, "BadRequest", "the name of the object (\(applied["metadata"]?["name"]?.stringValue ?? "")) does not match the name on the URL (\(name))", details: [:]))
        }
        if applied["metadata"]?["namespace"]?.stringValue.map({ $0 != route.namespace }) == true {
            return .json(400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request", details: [:]))
        }
        guard Self.isSubdomain(name) else {
            var invalid = Self.fixture("status-invalid")
            let text = invalid.json().replacingOccurrences(of: "Nginx_Deployment", with: name).replacingOccurrences(of: "Deployment.apps", with: "\(kind).\(route.group.isEmpty ? "" : route.group)")
                .replacingOccurrences(of: ".\"", with: "\"")
            invalid = KubeValue.fromJSON(try! JSONSerialization.jsonObject(with: Data(text.utf8)))
            return .json(422, invalid)
        }
        if let namespace = route.namespace, objects["/api/v1/namespaces/\(namespace)"] == nil {
            return .json(404, status(404, "NotFound", "namespaces \"\(namespace)\" not found", details: ["name": .string(namespace), "kind": "namespaces"]))
        }
        let path = route.path(name)
        let force = query["force"] == "true"
        resourceVersion += 1
        guard let existing = objects[path] else {
            applied = setMetadata(applied, "uid", .string(UUID().uuidString.lowercased()))
            applied = setMetadata(applied, "resourceVersion", .string(String(resourceVersion)))
            applied = setMetadata(applied, "creationTimestamp", "2026-01-01T00:00:00Z")
            if Self.hasGeneration(kind) { applied = setMetadata(applied, "generation", 1) }
            applied = setMetadata(applied, "managedFields", .array([managedEntry(manager, applied)]))
            if route.resource == "namespaces" { applied = set(applied, "status", ["phase": "Active"]) }
            objects[path] = applied
            runController(path)
            return .json(201, objects[path]!)
        }
        // Fields another manager owns (by Update) that this apply sets to something else.
        let others = managedFields(existing).filter { $0["manager"]?.stringValue != manager }
        var conflicts: [String] = []
        for other in others {
            guard case .object(let fields)? = other["fieldsV1"]?["f:spec"] else { continue }
            for key in fields.keys.sorted() {
                let field = String(key.dropFirst(2))
                if applied["spec"]?[field] != nil, applied["spec"]?[field] != existing["spec"]?[field] {
                    conflicts.append(".spec.\(field) (\(other["manager"]?.stringValue ?? ""))")
                }
            }
        }
        if !conflicts.isEmpty && !force {
            var conflict = Self.fixture("status-conflict")
            conflict = set(conflict, "message", .string("Apply failed with \(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s"): " + conflicts.joined(separator: ", ")))
            return .json(409, conflict)
        }
        if kind == "Job", existing["spec"]?["template"] != applied["spec"]?["template"] {
            return .json(422, status(422, "Invalid", "Job.batch \"\(name)\" is invalid: spec.template: Invalid value: ...: field is immutable",
                                     details: ["name": .string(name), "group": "batch", "kind": "Job"]))
        }
        // With force, the other managers lose the fields this apply takes; this one owns what it sent.
        var merged = applied
        for key in ["uid", "creationTimestamp", "generation"] {
            if let value = existing["metadata"]?[key] { merged = setMetadata(merged, key, value) }
        }
        if let state = existing["status"] { merged = set(merged, "status", state) }
        let specChanged = existing["spec"] != applied["spec"]
        let kept = conflicts.isEmpty ? others : others.filter { $0["operation"]?.stringValue != "Update" }
        merged = setMetadata(merged, "managedFields", .array(kept + [managedEntry(manager, applied)]))
        if existing.withoutServerFields != merged.withoutServerFields || specChanged {
            merged = bump(merged, specChanged: specChanged && Self.hasGeneration(kind))
        } else {
            merged = setMetadata(merged, "resourceVersion", existing["metadata"]?["resourceVersion"] ?? "1")
        }
        objects[path] = merged
        if specChanged { runController(path) }
        return .json(200, merged)
    }

    private func list(_ route: Route, selector: String) -> Answer {
        let terms = selector.split(separator: ",").map { term -> (String, String?) in
            let pair = term.split(separator: "=", maxSplits: 1).map(String.init)
            return (pair[0], pair.count > 1 ? pair[1] : nil)
        }
        let items = objects.filter { path, object in
            let inScope = route.namespace == nil
                ? path.hasPrefix(route.prefix + "/") && path.split(separator: "/").dropLast().last.map(String.init) == route.resource
                : path.hasPrefix(route.collection)
            guard inScope else { return false }
            return terms.allSatisfy { key, value in
                guard let label = object["metadata"]?["labels"]?[key]?.stringValue else { return false }
                return value == nil || label == value
            }
        }.sorted { $0.key < $1.key }.map { _, object -> KubeValue in
            // Items of a typed list carry neither kind nor apiVersion.
            guard case .object(var members) = object else { return object }
            members["kind"] = nil
            members["apiVersion"] = nil
            return .object(members)
        }
        return .json(200, ["kind": .string(Self.listKind(route.resource, fallback: route.resource)), "apiVersion": .string(route.apiVersion),
                           "metadata": ["resourceVersion": .string(String(resourceVersion))], "items": .array(items)])
    }

    private func get(_ route: Route, name: String) -> Answer {
        let path = route.path(name)
        guard objects[path] != nil else { return notFound(route, name) }
        reads[path, default: 0] += 1
        runController(path)
        return .json(200, objects[path]!)
    }

    private func log(_ route: Route, pod: String, tailLines: Int?) -> Answer {
        let path = route.path(pod)
        guard objects[path] != nil else { return notFound(route, pod) }
        var lines = (logs[path] ?? "").split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0 + "\n" }
        if let tailLines { lines = Array(lines.suffix(max(0, tailLines))) }
        return Answer(status: 200, contentType: "text/plain", body: lines.joined())
    }

    /// As the API server: a Job deleted without `propagationPolicy` orphans its pods
    /// (batch/v1's default for API clients; kubectl asks for Background), which run on.
    private func delete(_ route: Route, name: String, propagationPolicy: String?) -> Answer {
        let path = route.path(name)
        guard let object = objects[path] else { return notFound(route, name) }
        objects[path] = nil
        if route.resource == "namespaces" {
            for key in objects.keys where key.contains("/namespaces/\(name)/") { objects[key] = nil }
        }
        if route.resource == "deployments" { removePods(of: path) }
        if route.resource == "jobs", let namespace = route.namespace, ["Background", "Foreground"].contains(propagationPolicy ?? "Orphan") {
            for (key, pod) in objects where key.hasPrefix("/api/v1/namespaces/\(namespace)/pods/")
                && pod["metadata"]?["labels"]?["job-name"]?.stringValue == name { objects[key] = nil }
        }
        resourceVersion += 1
        return .json(200, object)
    }

    // MARK: The controller

    /// Moves a Deployment's status on (per `rolloutOf`), runs a new Job to its end.
    private func runController(_ path: String) {
        guard let object = objects[path] else { return }
        switch object["kind"]?.stringValue {
        case "Deployment":
            let updated = deploymentStatus(path, object)
            objects[path] = updated
            if case .int(let ready)? = updated["status"]?["readyReplicas"], ready > 0,
               updated["status"]?["updatedReplicas"] == updated["status"]?["replicas"] { runPods(path, updated, count: Int(ready)) }
        case "Job": if object["status"] == nil { runJob(path, object) }
        default: break
        }
    }

    private func deploymentStatus(_ path: String, _ object: KubeValue) -> KubeValue {
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        var wanted: Int64 = 1
        if case .int(let replicas)? = object["spec"]?["replicas"] { wanted = replicas }
        let generation = object["metadata"]?["generation"] ?? 1
        let readCount = reads[path] ?? 0
        func counted(_ fixture: String, updated: Int64, available: Int64, total: Int64) -> KubeValue {
            var status = Self.fixture(fixture)
            status = set(status, "observedGeneration", generation)
            status = set(status, "replicas", .int(total))
            status = set(status, "updatedReplicas", .int(updated))
            status = set(status, "availableReplicas", .int(available))
            status = set(status, "readyReplicas", .int(available))
            status = set(status, "unavailableReplicas", .int(max(0, total - available)))
            let text = status.json().replacingOccurrences(of: "nginx-deployment-4262182780", with: "\(name)-\(KubeNames.hash(generation.json()).prefix(10))")
            return KubeValue.fromJSON(try! JSONSerialization.jsonObject(with: Data(text.utf8)))
        }
        let progressing = counted("deployment-status-progressing", updated: 0, available: 0, total: wanted)
        let status: KubeValue
        switch rolloutOf(name) {
        case .ready(let after):
            status = readCount >= after ? counted("deployment-status-complete", updated: wanted, available: wanted, total: wanted) : progressing
        case .deadlineExceeded(let after):
            status = readCount >= after ? counted("deployment-status-deadline", updated: wanted, available: 0, total: wanted) : progressing
        case .stuck:
            status = progressing
        }
        return set(object, "status", status)
    }

    /// A ready Deployment's pods: `count` of them, labelled as its template, each with its log.
    private func runPods(_ path: String, _ deployment: KubeValue, count: Int) {
        let name = deployment["metadata"]?["name"]?.stringValue ?? ""
        let namespace = deployment["metadata"]?["namespace"]?.stringValue ?? "default"
        let template = deployment["metadata"]?["generation"]?.json() ?? "1"
        let prefix = "/api/v1/namespaces/\(namespace)/pods/\(name)-"
        let current = objects.keys.filter { $0.hasPrefix(prefix) && objects[$0]?["metadata"]?["annotations"]?["fake/deployment"]?.stringValue == path }
        let wanted = (0..<count).map { "\(prefix)\(KubeNames.hash(template).prefix(10))-\(KubeNames.hash(name + template + String($0)).prefix(5))" }
        guard Set(current) != Set(wanted) else { return }
        removePods(of: path)
        for (index, podPath) in wanted.enumerated() {
            let podName = String(podPath.dropFirst("/api/v1/namespaces/\(namespace)/pods/".count))
            objects[podPath] = ["apiVersion": "v1", "kind": "Pod",
                                "metadata": ["name": .string(podName), "namespace": .string(namespace),
                                             "labels": deployment["spec"]?["template"]?["metadata"]?["labels"] ?? [:],
                                             "annotations": ["fake/deployment": .string(path)]],
                                "status": ["phase": "Running"]]
            logs[podPath] = podLogOf(name, index).map { $0 + "\n" }.joined()
        }
    }

    private func removePods(of deploymentPath: String) {
        for (key, pod) in objects where key.hasPrefix("/api/v1/") && pod["metadata"]?["annotations"]?["fake/deployment"]?.stringValue == deploymentPath {
            objects[key] = nil
            logs[key] = nil
        }
    }

    private func runJob(_ path: String, _ job: KubeValue) {
        let outcome = jobOutcomeOf(job)
        let name = job["metadata"]?["name"]?.stringValue ?? ""
        let namespace = job["metadata"]?["namespace"]?.stringValue ?? "default"
        let podName = "\(name)-\(KubeNames.hash(name + String(resourceVersion)).prefix(5))"
        var pod = Self.fixture("job-pod")
        let uid = job["metadata"]?["uid"] ?? ""
        pod = set(pod, "metadata", ["name": .string(podName), "namespace": .string(namespace),
                                    "labels": ["job-name": .string(name), "batch.kubernetes.io/job-name": .string(name),
                                               "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid]])
        let container = job["spec"]?["template"]?["spec"]?["containers"]
        if let container { pod = set(pod, "spec", ["containers": container, "restartPolicy": "Never"]) }
        if outcome.running {
            pod = set(pod, "status", ["phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                                      "containerStatuses": [["name": containerName(job), "ready": true, "restartCount": 0,
                                                             "state": ["running": ["startedAt": "2026-01-01T00:00:00Z"]]]]])
            let podPath = "/api/v1/namespaces/\(namespace)/pods/\(podName)"
            objects[podPath] = pod
            logs[podPath] = outcome.log.map { $0 + "\n" }.joined()
            objects[path] = set(job, "status", ["active": 1, "ready": 1, "startTime": "2026-01-01T00:00:00Z"])
            return
        }
        let terminated: KubeValue = ["exitCode": .int(Int64(outcome.exitCode)), "reason": .string(outcome.exitCode == 0 ? "Completed" : "Error"),
                                     "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"]
        var containerName: KubeValue = "job"
        if case .array(let containers)? = container, let first = containers.first?["name"] { containerName = first }
        pod = set(pod, "status", ["phase": .string(outcome.exitCode == 0 ? "Succeeded" : "Failed"),
                                  "containerStatuses": [["name": containerName, "ready": false, "restartCount": 0, "state": ["terminated": terminated]]]])
        let podPath = "/api/v1/namespaces/\(namespace)/pods/\(podName)"
        objects[podPath] = pod
        logs[podPath] = outcome.log.map { $0 + "\n" }.joined()
        objects[path] = set(job, "status", Self.fixture(outcome.exitCode == 0 ? "job-status-complete" : "job-status-failed"))
    }

    private func containerName(_ job: KubeValue) -> KubeValue {
        if case .array(let containers)? = job["spec"]?["template"]?["spec"]?["containers"], let first = containers.first?["name"] { return first }
        return "job"
    }

    // MARK: Object helpers

    private func managedEntry(_ manager: String, _ applied: KubeValue) -> KubeValue {
        ["manager": .string(manager), "operation": "Apply", "apiVersion": applied["apiVersion"] ?? "v1",
         "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": Self.fieldSet(applied, top: true)]
    }

    /// The `f:` field set of what an apply sent (objects by key; lists as one leaf).
    static func fieldSet(_ value: KubeValue, top: Bool = false) -> KubeValue {
        guard case .object(let members) = value else { return .object([:]) }
        var fields: [String: KubeValue] = [:]
        for (key, member) in members where !(top && (key == "apiVersion" || key == "kind" || key == "status")) {
            if top && key == "metadata", case .object(let metadata) = member {
                var kept: [String: KubeValue] = [:]
                for (metaKey, metaValue) in metadata where metaKey == "labels" || metaKey == "annotations" {
                    kept["f:\(metaKey)"] = fieldSet(metaValue)
                }
                fields["f:metadata"] = .object(kept)
                continue
            }
            if case .object = member { fields["f:\(key)"] = fieldSet(member) } else { fields["f:\(key)"] = .object([:]) }
        }
        return .object(fields)
    }

    private func managedFields(_ object: KubeValue) -> [KubeValue] {
        if case .array(let entries)? = object["metadata"]?["managedFields"] { return entries }
        return []
    }

    private func bump(_ object: KubeValue, specChanged: Bool) -> KubeValue {
        resourceVersion += 1
        var out = setMetadata(object, "resourceVersion", .string(String(resourceVersion)))
        if specChanged, case .int(let generation)? = object["metadata"]?["generation"] {
            out = setMetadata(out, "generation", .int(generation + 1))
        }
        return out
    }

    private func set(_ object: KubeValue, _ key: String, _ value: KubeValue) -> KubeValue {
        guard case .object(var members) = object else { return object }
        members[key] = value
        return .object(members)
    }

    private func setMetadata(_ object: KubeValue, _ key: String, _ value: KubeValue) -> KubeValue {
        guard case .object(var metadata) = object["metadata"] ?? .object([:]) else { return object }
        metadata[key] = value
        return set(object, "metadata", .object(metadata))
    }

    static func hasGeneration(_ kind: String) -> Bool { ["Deployment", "Job", "CronJob", "Ingress"].contains(kind) }

    static func listKind(_ resource: String, fallback: String) -> String {
        let kinds = ["namespaces": "Namespace", "secrets": "Secret", "persistentvolumeclaims": "PersistentVolumeClaim", "jobs": "Job",
                     "services": "Service", "deployments": "Deployment", "ingresses": "Ingress", "cronjobs": "CronJob", "pods": "Pod"]
        return (kinds[resource] ?? fallback) + "List"
    }

    /// A DNS-1123 subdomain (what most object names must be).
    static func isSubdomain(_ name: String) -> Bool {
        name.count <= 253 && name.range(of: #"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"#, options: .regularExpression) != nil
    }
}

extension KubeValue {
    /// The object without what the server sets (resourceVersion, managedFields, status).
    var withoutServerFields: KubeValue {
        guard case .object(var members) = self, case .object(var metadata)? = members["metadata"] else { return self }
        for key in ["resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"] { metadata[key] = nil }
        members["metadata"] = .object(metadata)
        members["status"] = nil
        return .object(members)
    }
}

/// Lets the channel handlers reach the server once it exists.
final class HandlerBox: @unchecked Sendable {
    weak var server: FakeKubernetesAPI?
}

/// Collects one HTTP/1.1 request and writes the server's answer.
final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let box: HandlerBox
    private var head: HTTPRequestHead?
    private var body = Data()

    init(box: HandlerBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = Data()
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head, let server = box.server else { return }
            // Verified by the handshake when present (optionalVerification against the cluster CA).
            let certificate = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.peerCertificate
            let answer = server.handle(method: head.method.rawValue, uri: head.uri, headers: head.headers, body: body,
                                       clientCertificate: certificate != nil)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: answer.contentType)
            headers.add(name: "Content-Length", value: String(answer.body.utf8.count))
            let status = HTTPResponseStatus(statusCode: answer.status)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            self.head = nil
        }
    }
}
