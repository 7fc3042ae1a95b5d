import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import SlipwayCore

/// `KubernetesCluster` over the Kubernetes REST API (AsyncHTTPClient): server-side
/// apply, list by label selector, delete, Deployment and Job status, pod logs.
/// Authenticates with the kubeconfig's bearer token or client certificate, and
/// trusts its certificate authority. No kubectl, no Helm.
public final class KubernetesAPIClient: KubernetesCluster {
    public let config: Kubeconfig
    private let client: HTTPClient
    /// A bound on each request but log follows (which last as long as the pod runs).
    public let requestTimeout: TimeAmount

    public init(config: Kubeconfig, requestTimeout: TimeAmount = .seconds(30)) throws {
        self.config = config
        self.requestTimeout = requestTimeout
        client = try Self.client(for: config)
    }

    // MARK: KubernetesCluster

    public func apply(_ objects: [KubeObject], fieldManager: String) async throws {
        for object in objects {
            let kind = KubeKind.of(object)
            let path = kind.path(namespace: object.namespace, name: object.name)
            // JSON is YAML: the apply-patch+yaml body is the object's compact JSON.
            let response = try await send(.PATCH, path, query: [("fieldManager", fieldManager), ("force", "true")],
                                          body: Data(object.json().utf8), contentType: "application/apply-patch+yaml")
            try await check(response, doing: "apply \(object.kind) \(object.name)\(object.namespace.map { " in namespace \($0)" } ?? "")")
        }
    }

    public func list(kinds: [KubeKind], namespace: String?, labelSelector: [String: String]) async throws -> [KubeObjectReference] {
        let selector = Self.selector(labelSelector)
        var found: [KubeObjectReference] = []
        for kind in kinds {
            // Namespaces are cluster-scoped: listed cluster-wide whatever `namespace` is.
            let scope = kind.kind == "Namespace" ? nil : namespace
            let response = try await send(.GET, kind.path(namespace: scope), query: selector.isEmpty ? [] : [("labelSelector", selector)])
            let list = try await check(response, doing: "list \(kind.resource)\(scope.map { " in namespace \($0)" } ?? "")")
            guard case .array(let items)? = list["items"] else { continue }
            for item in items {
                guard let name = item["metadata"]?["name"]?.stringValue else { continue }
                found.append(KubeObjectReference(kind: kind, namespace: item["metadata"]?["namespace"]?.stringValue, name: name))
            }
        }
        return found
    }

    public func delete(_ object: KubeObjectReference) async throws {
        let response = try await send(.DELETE, object.kind.path(namespace: object.namespace, name: object.name),
                                      query: [("propagationPolicy", "Background")])
        if response.status.code == 404 { return }
        try await check(response, doing: "delete \(object.kind.kind) \(object.name)")
    }

    public func deploymentStatus(namespace: String, name: String) async throws -> KubeRolloutStatus {
        let kind = KubeKind.rendered.first { $0.kind == "Deployment" }!
        let deployment = try await check(try await send(.GET, kind.path(namespace: namespace, name: name)), doing: "read Deployment \(name)")
        return Self.rollout(of: deployment)
    }

    public func jobStatus(namespace: String, name: String) async throws -> KubeJobStatus {
        let kind = KubeKind.rendered.first { $0.kind == "Job" }!
        let job = try await check(try await send(.GET, kind.path(namespace: namespace, name: name)), doing: "read Job \(name)")
        return Self.jobState(of: job)
    }

    public func jobLogs(namespace: String, name: String, output: @escaping @Sendable (String) -> Void) async throws {
        for pod in try await jobPods(namespace: namespace, job: name) {
            guard let podName = pod["metadata"]?["name"]?.stringValue else { continue }
            let response = try await send(.GET, KubeKind.pod.path(namespace: namespace, name: podName) + "/log",
                                          query: [("follow", "true")], timeout: .hours(24))
            guard (200..<300).contains(response.status.code) else { try await check(response, doing: "read the log of pod \(podName)"); continue }
            var pending = Data()
            for try await chunk in response.body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    output(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending = Data(pending[pending.index(after: newline)...])
                }
            }
            if !pending.isEmpty { output(String(decoding: pending, as: UTF8.self)) }
        }
    }

    public func jobExitCode(namespace: String, name: String) async throws -> Int? {
        for pod in try await jobPods(namespace: namespace, job: name) {
            guard case .array(let statuses)? = pod["status"]?["containerStatuses"] else { continue }
            for status in statuses {
                if case .int(let code)? = status["state"]?["terminated"]?["exitCode"] { return Int(code) }
            }
        }
        return nil
    }

    public func jobPodPhase(namespace: String, name: String) async throws -> String? {
        try await jobPods(namespace: namespace, job: name).last?["status"]?["phase"]?.stringValue
    }

    public func podLogs(namespace: String, labelSelector: [String: String], tailLines: Int?, follow: Bool,
                        output: @escaping @Sendable (KubePodLine) -> Void) async throws {
        let response = try await send(.GET, KubeKind.pod.path(namespace: namespace), query: [("labelSelector", Self.selector(labelSelector))])
        guard case .array(let pods)? = try await check(response, doing: "list the pods in namespace \(namespace)")["items"] else { return }
        let named = pods.compactMap { pod -> (String, [String: String])? in
            guard let name = pod["metadata"]?["name"]?.stringValue else { return nil }
            var labels: [String: String] = [:]
            if case .object(let members)? = pod["metadata"]?["labels"] { labels = members.compactMapValues(\.stringValue) }
            return (name, labels)
        }.sorted { $0.0 < $1.0 }
        // Every pod's stream at once when following (each ends with its pod); one after another otherwise.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (pod, labels) in named {
                var query: [(String, String)] = []
                if follow { query.append(("follow", "true")) }
                if let tailLines { query.append(("tailLines", String(tailLines))) }
                let stream: @Sendable () async throws -> Void = { [self, query] in
                    try await self.streamLog(namespace: namespace, pod: pod, query: query) { output(KubePodLine(pod: pod, labels: labels, line: $0)) }
                }
                if follow { group.addTask(operation: stream) } else { try await stream() }
            }
            try await group.waitForAll()
        }
    }

    public func deployments(namespace: String, labelSelector: [String: String]) async throws -> [KubeDeploymentSummary] {
        let kind = KubeKind.rendered.first { $0.kind == "Deployment" }!
        let response = try await send(.GET, kind.path(namespace: namespace), query: [("labelSelector", Self.selector(labelSelector))])
        guard case .array(let items)? = try await check(response, doing: "list Deployments in namespace \(namespace)")["items"] else { return [] }
        func int(_ value: KubeValue?) -> Int { if case .int(let n)? = value { return Int(n) }; return 0 }
        return items.compactMap { item in
            guard let name = item["metadata"]?["name"]?.stringValue else { return nil }
            var labels: [String: String] = [:]
            if case .object(let members)? = item["metadata"]?["labels"] { labels = members.compactMapValues(\.stringValue) }
            return KubeDeploymentSummary(name: name, labels: labels, desired: item["spec"]?["replicas"] == nil ? 1 : int(item["spec"]?["replicas"]),
                                         ready: int(item["status"]?["readyReplicas"]))
        }.sorted { $0.name < $1.name }
    }

    public func jobs(namespace: String, labelSelector: [String: String]) async throws -> [KubeJobSummary] {
        let kind = KubeKind.rendered.first { $0.kind == "Job" }!
        let response = try await send(.GET, kind.path(namespace: namespace), query: [("labelSelector", Self.selector(labelSelector))])
        guard case .array(let items)? = try await check(response, doing: "list Jobs in namespace \(namespace)")["items"] else { return [] }
        let dates = ISO8601DateFormatter()
        return items.compactMap { item in
            guard let name = item["metadata"]?["name"]?.stringValue else { return nil }
            var labels: [String: String] = [:]
            if case .object(let members)? = item["metadata"]?["labels"] { labels = members.compactMapValues(\.stringValue) }
            var command: [String] = []
            if case .array(let containers)? = item["spec"]?["template"]?["spec"]?["containers"],
               case .array(let argv)? = containers.first?["command"] { command = argv.compactMap(\.stringValue) }
            let started = (item["status"]?["startTime"]?.stringValue ?? item["metadata"]?["creationTimestamp"]?.stringValue).flatMap(dates.date(from:))
            var annotations: [String: String] = [:]
            if case .object(let members)? = item["metadata"]?["annotations"] { annotations = members.compactMapValues(\.stringValue) }
            var owners: [String] = []
            if case .array(let references)? = item["metadata"]?["ownerReferences"] { owners = references.compactMap { $0["kind"]?.stringValue } }
            return KubeJobSummary(name: name, labels: labels, command: command, started: started, status: Self.jobState(of: item),
                                  annotations: annotations, ownerKinds: owners)
        }.sorted { $0.name < $1.name }
    }

    /// One pod's log, a line at a time (a pod gone or not started yet is skipped, not an error).
    private func streamLog(namespace: String, pod: String, query: [(String, String)], line: @escaping @Sendable (String) -> Void) async throws {
        let response = try await send(.GET, KubeKind.pod.path(namespace: namespace, name: pod) + "/log", query: query, timeout: .hours(24))
        guard (200..<300).contains(response.status.code) else {
            if [400, 404].contains(response.status.code) { return }
            try await check(response, doing: "read the log of pod \(pod)")
            return
        }
        var pending = Data()
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                line(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending = Data(pending[pending.index(after: newline)...])
            }
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
    }

    /// A Job's pods (by the `job-name` label the Job controller sets), oldest first.
    private func jobPods(namespace: String, job: String) async throws -> [KubeValue] {
        let response = try await send(.GET, KubeKind.pod.path(namespace: namespace), query: [("labelSelector", "job-name=\(job)")])
        guard case .array(let items)? = try await check(response, doing: "list the pods of Job \(job)")["items"] else { return [] }
        return items.sorted { ($0["metadata"]?["name"]?.stringValue ?? "") < ($1["metadata"]?["name"]?.stringValue ?? "") }
    }

    // MARK: Reading objects

    /// kubectl's rollout rule: done when the controller saw the current generation,
    /// every replica runs the new template, no old replica is left and every new one
    /// is available; failed when Progressing is False (ProgressDeadlineExceeded).
    public static func rollout(of deployment: KubeValue) -> KubeRolloutStatus {
        func int(_ value: KubeValue?) -> Int { if case .int(let n)? = value { return Int(n) }; return 0 }
        let status = deployment["status"] ?? .object([:])
        if case .array(let conditions)? = status["conditions"],
           let progressing = conditions.first(where: { $0["type"]?.stringValue == "Progressing" }),
           progressing["status"]?.stringValue == "False" {
            return .failed(reason: progressing["reason"]?.stringValue ?? "Failed", message: progressing["message"]?.stringValue ?? "")
        }
        let wanted = deployment["spec"]?["replicas"] == nil ? 1 : int(deployment["spec"]?["replicas"])
        let updated = int(status["updatedReplicas"]), available = int(status["availableReplicas"]), total = int(status["replicas"])
        let observed = int(status["observedGeneration"]), generation = int(deployment["metadata"]?["generation"])
        if observed >= generation, updated >= wanted, total <= updated, available >= updated {
            return .complete
        }
        return .progressing(updated: observed >= generation ? updated : 0, available: available, wanted: wanted)
    }

    /// Complete or Failed (with its reason and message) from the Job's conditions.
    public static func jobState(of job: KubeValue) -> KubeJobStatus {
        guard case .array(let conditions)? = job["status"]?["conditions"] else { return .running }
        for condition in conditions where condition["status"]?.stringValue == "True" {
            switch condition["type"]?.stringValue {
            case "Complete": return .succeeded
            case "Failed":
                let reason = condition["reason"]?.stringValue ?? "Failed"
                let message = condition["message"]?.stringValue ?? ""
                return .failed(reason: message.isEmpty ? reason : "\(reason): \(message)")
            default: continue
            }
        }
        return .running
    }

    // MARK: Requests

    struct Response {
        let status: Int
        let body: HTTPClientResponse.Body
    }

    /// `a=b,c=d`, keys sorted.
    static func selector(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil,
                      contentType: String? = nil, timeout: TimeAmount? = nil) async throws -> HTTPClientResponse {
        var components = URLComponents()
        components.percentEncodedPath = path
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        // '+' and ',' would be read as a space and a separator by some servers' form decoding.
        let uri = (components.string ?? path).replacingOccurrences(of: "+", with: "%2B")
        var request = HTTPClientRequest(url: config.server + uri)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "slipway")
        if let token = config.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        }
        do {
            return try await client.execute(request, timeout: timeout ?? requestTimeout)
        } catch {
            throw Self.unreachable(config, error)
        }
    }

    /// A request that got no answer, as a line an admin can act on; TLS failures say
    /// which side's certificate was refused (BoringSSL's reason is kept at the end).
    static func unreachable(_ config: Kubeconfig, _ error: any Error) -> UserFacingError {
        let said = "\(error)"
        let prefix = "cannot reach the Kubernetes API at \(config.server) (context \(config.context))"
        if said.contains("CERTIFICATE_VERIFY_FAILED") {
            let trusted = config.certificateAuthorityPEM == nil ? "this host's system roots (the kubeconfig gives no certificate-authority)" : "the kubeconfig's certificate-authority"
            return UserFacingError(.unavailable, "\(prefix): the TLS handshake failed: its certificate is not signed by \(trusted), or does not name that address; an admin checks certificate-authority-data and server in the kubeconfig (\(said))")
        }
        let clientCertificateRefusals = ["ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_REQUIRED", "ALERT_CERTIFICATE_UNKNOWN",
                                         "ALERT_CERTIFICATE_EXPIRED", "ALERT_CERTIFICATE_REVOKED", "ALERT_UNSUPPORTED_CERTIFICATE", "ALERT_ACCESS_DENIED"]
        if clientCertificateRefusals.contains(where: said.contains) {
            let given = config.clientCertificatePEM == nil ? "it wants a client certificate and the kubeconfig gives none" : "it refused the kubeconfig's client certificate (not issued by the cluster's CA, expired or revoked?)"
            return UserFacingError(.unavailable, "\(prefix): the TLS handshake failed: \(given); an admin renews client-certificate-data and client-key-data in the kubeconfig (\(said))")
        }
        return UserFacingError(.unavailable, "\(prefix): \(said); an admin can check the cluster and the kubeconfig setting")
    }

    /// The body as a value when the status is 2xx, else the API's Status object as an
    /// error a user can act on.
    @discardableResult
    private func check(_ response: HTTPClientResponse, doing what: String) async throws -> KubeValue {
        let data = Data((try await response.body.collect(upTo: 64 << 20)).readableBytesView)
        let value = (try? JSONSerialization.jsonObject(with: data)).map(KubeValue.fromJSON) ?? .null
        if (200..<300).contains(Int(response.status.code)) { return value }
        throw Self.failure(status: Int(response.status.code), body: value, raw: data, doing: what, server: config.server)
    }

    /// A Status object (`{"kind":"Status","reason":"NotFound","message":...,"code":404}`)
    /// as a `UserFacingError` naming what was attempted and what to do.
    static func failure(status: Int, body: KubeValue, raw: Data, doing what: String, server: String) -> UserFacingError {
        let reason = body["reason"]?.stringValue ?? HTTPResponseStatus(statusCode: status).reasonPhrase
        let message = body["message"]?.stringValue ?? String(decoding: raw.prefix(300), as: UTF8.self)
        let said = "the cluster refused to \(what): \(status) \(reason): \(message)"
        switch status {
        case 401:
            return UserFacingError(.unavailable, "\(said); the kubeconfig's token or client certificate is not accepted by \(server) (an admin can renew it)")
        case 403:
            return UserFacingError(.unavailable, "\(said); the kubeconfig's user lacks the permission (an admin can grant it a Role over the app's namespace)")
        case 404: return UserFacingError(.notFound, said)
        case 409: return UserFacingError(.conflict, "\(said); another field manager owns these fields (kubectl edits?): remove them there, or delete the object and deploy again")
        case 422: return UserFacingError(.invalidInput, said)
        default: return UserFacingError(.unavailable, said)
        }
    }

    // MARK: Clients

    private static let clients = ClientCache()

    /// One HTTPClient per distinct TLS setup, for the process's life (never shut down,
    /// as the engine's: a client must not be deinitialized unshut).
    static func client(for config: Kubeconfig) throws -> HTTPClient {
        let key = [config.certificateAuthorityPEM ?? "", config.clientCertificatePEM ?? "", config.clientKeyPEM ?? "",
                   config.insecureSkipTLSVerify ? "insecure" : ""].joined(separator: "\u{0}")
        return try clients.get(key) {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                if let ca = config.certificateAuthorityPEM {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8)))
                }
                if let certificate = config.clientCertificatePEM, let key = config.clientKeyPEM {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
                }
            } catch {
                throw UserFacingError.invalid("the kubeconfig's certificate authority, client certificate or key is not PEM this server can read (\(error)); `kubectl config view --raw` shows them")
            }
            if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
            return HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(10))))
        }
    }
}

private final class ClientCache: @unchecked Sendable {
    private let lock = NSLock()
    private var clients: [String: HTTPClient] = [:]

    func get(_ key: String, make: () throws -> HTTPClient) throws -> HTTPClient {
        try lock.withLock {
            if let client = clients[key] { return client }
            let client = try make()
            clients[key] = client
            return client
        }
    }
}
