import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SlipwayCore

/// The container engine through the Docker Engine REST API (v1.41) over a unix
/// socket: podman's compatible service or Docker, with the same code.
public final class DockerEngine: ContainerEngine {
    public let endpoint: String
    private var client: HTTPClient { Self.client }
    /// One client for the process, never shut down. Not `HTTPClient.shared`: its 90 s
    /// idle read timeout ended a wait, or a followed log, of any container silent for
    /// longer (a quiet deploy task failed with "HTTPClientError.readTimeout"). Each
    /// request brings its own deadline instead.
    private static let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                           configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(10))))
    private static let apiPrefix = "/v1.41"

    /// The sockets tried, in order, when the config names none.
    public static let usualSockets = ["/run/podman/podman.sock", "/var/run/docker.sock", "/run/docker.sock"]

    /// podman or Docker, learnt from the first request that needs it.
    private let engineKind = KindCache()

    public init(socketPath: String) {
        endpoint = socketPath
    }

    private func isPodman() async throws -> Bool {
        if let known = engineKind.value { return known }
        let podman = try await version().kind == "podman"
        engineKind.value = podman
        return podman
    }

    /// The configured socket, else the first usual one that exists (no network
    /// round trip: most commands never talk to the engine).
    public static func locate(configured: String?) -> DockerEngine {
        DockerEngine(socketPath: configured ?? usualSockets.first(where: FileManager.default.fileExists) ?? usualSockets[0])
    }

    // MARK: Requests

    /// `repeated`: parameters given once per value (`changes` of an import), after `query`'s.
    /// `versioned`: under the Docker API's version (every compatible endpoint), or as given (podman's own).
    private func url(_ path: String, _ query: [String: String] = [:], repeated: [(String, String)] = [], versioned: Bool = true) -> String {
        var components = URLComponents()
        components.path = (versioned ? Self.apiPrefix : "") + path
        let items = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } + repeated.map { URLQueryItem(name: $0.0, value: $0.1) }
        if !items.isEmpty { components.queryItems = items }
        // '+' in a query value must stay a literal plus for the engine's form decoding.
        let uri = (components.string ?? path).replacingOccurrences(of: "+", with: "%2B")
        return URL(httpURLWithSocketPath: endpoint, uri: uri)!.absoluteString
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], repeated: [(String, String)] = [],
                      json: Encodable? = nil, body: HTTPClientRequest.Body? = nil, contentType: String? = nil,
                      timeout: TimeAmount = .seconds(60), versioned: Bool = true) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url(path, query, repeated: repeated, versioned: versioned))
        request.method = method
        // AsyncHTTPClient sends no Host for unix sockets, and podman then answers 400.
        request.headers.add(name: "Host", value: "engine")
        if let json {
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(AnyEncodable(json))))
            request.headers.add(name: "Content-Type", value: "application/json")
        } else if let body {
            request.body = body
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        }
        do {
            return try await client.execute(request, timeout: timeout)
        } catch {
            throw unreachable(because: error)
        }
    }

    /// The body as JSON, or a user-facing error built from the engine's message.
    private func decode<T: Decodable>(_ type: T.Type, _ response: HTTPClientResponse, limit: Int = 16 << 20) async throws -> T {
        let body = try await response.body.collect(upTo: limit)
        try check(response, body)
        return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }

    private func expectSuccess(_ response: HTTPClientResponse, allowing: Set<UInt> = []) async throws {
        let body = try await response.body.collect(upTo: 1 << 20)
        if allowing.contains(response.status.code) { return }
        try check(response, body)
    }

    private func check(_ response: HTTPClientResponse, _ body: ByteBuffer) throws {
        guard (200..<300).contains(response.status.code) else {
            struct Message: Decodable { let message: String? }
            let message = (try? JSONDecoder().decode(Message.self, from: Data(body.readableBytesView)))?.message ?? String(buffer: body)
            throw UserFacingError(.unavailable, "the container engine at \(endpoint) refused (\(response.status.code)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    // MARK: ContainerEngine

    public func ping() async throws {
        var request = HTTPClientRequest(url: URL(httpURLWithSocketPath: endpoint, uri: "/_ping")!.absoluteString)
        request.headers.add(name: "Host", value: "engine")
        do {
            // A missing or refusing socket fails at once; the bound is for an engine that
            // accepted and is slow to answer. 3 s was too short on a loaded 2-core host
            // (ci13: pushes refused as "not answering" while podman was busy building).
            let response = try await client.execute(request, timeout: .seconds(20))
            _ = try await response.body.collect(upTo: 1024)
            guard response.status == .ok else { throw unreachable(because: nil) }
        } catch {
            throw unreachable(because: error)
        }
    }

    /// The engine did not answer; what the HTTP client saw is kept in the message (a
    /// refused connection and a request past its bound call for different fixes).
    private func unreachable(because error: Error?) -> UserFacingError {
        let seen = error.map { " (\($0))" } ?? ""
        return UserFacingError(.unavailable, "the container engine at \(endpoint) is not answering\(seen); start it (scripts/engine.sh starts podman's API service) or set engine_socket in the config")
    }

    public func version() async throws -> EngineVersion {
        struct Reply: Decodable {
            struct Component: Decodable { let Name: String }
            let Version: String
            let ApiVersion: String
            let Components: [Component]?
        }
        let reply = try await decode(Reply.self, try await send(.GET, "/version"))
        let isPodman = reply.Components?.contains { $0.Name.lowercased().contains("podman") } ?? false
        return EngineVersion(version: reply.Version, apiVersion: reply.ApiVersion, kind: isPodman ? "podman" : "docker")
    }

    public func importImage(fromTarFile path: String, reference: String, changes: [String]) async throws {
        // One `changes` parameter per instruction: podman 4.3 reads a newline inside one as
        // part of the value (two LABEL lines became one label holding the second line).
        let repeated = changes.map { ("changes", $0) }
        if try await isPodman() {
            // podman's own endpoint, not the compatible one: its /images/create keeps the
            // uploaded tarball in its temporary folder for good (api_load.tar*, one per
            // import: the builder's root is half a gigabyte, and 70 GB had piled up on a
            // test host; podman issue 28531). libpod's import removes its copy. Its paths
            // need a version of podman's own API (4.0: the endpoint's present form).
            let response = try await send(.POST, "/v4.0.0/libpod/images/import", query: ["reference": reference], repeated: repeated,
                                          body: try tarBody(path), contentType: "application/x-tar", timeout: .minutes(10), versioned: false)
            try await expectSuccess(response)  // {"Id": …}; a failure is an error status
            return
        }
        // `repo` carries the tag.
        let query = ["fromSrc": "-", "repo": reference]
        let response = try await send(.POST, "/images/create", query: query, repeated: repeated, body: try tarBody(path),
                                      contentType: "application/x-tar", timeout: .minutes(10))
        // Progress arrives as JSON lines; a failure is a line with "error" even under 200.
        let body = try await response.body.collect(upTo: 16 << 20)
        try check(response, body)
        for line in String(buffer: body).split(separator: "\n") where line.contains("\"error\"") {
            throw UserFacingError(.unavailable, "the container engine at \(endpoint) could not import \(reference): \(line)")
        }
    }

    public func danglingImages(label: String, value: String) async throws -> [DanglingImage] {
        struct Item: Decodable { let Id: String; let Created: Int64? }
        let filters = String(decoding: try JSONEncoder().encode(["dangling": ["true"], "label": ["\(label)=\(value)"]]), as: UTF8.self)
        let items = try await decode([Item].self, try await send(.GET, "/images/json", query: ["filters": filters]))
        return items.map { DanglingImage(id: $0.Id, created: Date(timeIntervalSince1970: TimeInterval($0.Created ?? 0))) }
    }

    public func inspectImage(_ reference: String) async throws -> ImageInfo? {
        struct Reply: Decodable {
            struct Config: Decodable {
                let User: String?, WorkingDir: String?, Cmd: [String]?, Entrypoint: [String]?, Labels: [String: String]?
                let OnBuild: [String]?
            }
            let Id: String
            let RepoTags: [String]?
            let Created: String?
            let Size: Int64?
            let Config: Config?
        }
        let response = try await send(.GET, "/images/\(Self.escape(reference))/json")
        if response.status == .notFound { _ = try await response.body.collect(upTo: 1 << 20); return nil }
        let reply = try await decode(Reply.self, response)
        var info = ImageInfo(id: reply.Id, created: reply.Created, size: reply.Size ?? 0, user: reply.Config?.User ?? "",
                             workingDirectory: reply.Config?.WorkingDir ?? "",
                             hasCommand: !(reply.Config?.Cmd ?? []).isEmpty || !(reply.Config?.Entrypoint ?? []).isEmpty,
                             labels: reply.Config?.Labels ?? [:])
        info.tags = reply.RepoTags ?? []
        info.onBuild = reply.Config?.OnBuild ?? []
        return info
    }

    public func buildImage(_ request: BuildRequest, output: @escaping @Sendable (String) -> Void) async throws {
        func json(_ value: [String: String]) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }
        var query = ["t": request.tag, "dockerfile": request.dockerfile, "forcerm": "1", "rm": "1",
                     "buildargs": try json(request.buildArgs)]
        if !request.labels.isEmpty { query["labels"] = try json(request.labels) }
        // Memory without swap on top; CPUs as a CFS quota per 100 ms period.
        if let memory = request.limits.memoryBytes { query["memory"] = String(memory); query["memswap"] = String(memory) }
        if let nano = request.limits.nanoCPUs { query["cpuperiod"] = "100000"; query["cpuquota"] = String(nano / 10_000) }
        if let sandbox = request.sandbox {
            // Build steps on the app's network. podman's compat /build otherwise runs
            // them in the host's network namespace (its default), where 127.0.0.1 is the
            // host's loopback; it takes the network as a namespace option. Docker
            // takes `networkmode`.
            try await ensureNetwork(of: sandbox)
            if try await isPodman() {
                struct Namespace: Encodable { let Name: String; let Host: Bool; let Path: String }
                query["nsoptions"] = String(decoding: try JSONEncoder().encode([Namespace(Name: "network", Host: false, Path: sandbox.network)]), as: UTF8.self)
            } else {
                query["networkmode"] = sandbox.network
            }
        }
        let response = try await send(.POST, "/build", query: query, body: try tarBody(request.contextTarFile),
                                      contentType: "application/x-tar", timeout: .hours(2))
        guard (200..<300).contains(response.status.code) else { try await expectSuccess(response); return }
        // Progress is one JSON object per line; a failed build still answers 200 and
        // ends with a line carrying "error".
        struct Line: Decodable { let stream: String?; let error: String? }
        var pending = Data()
        var failure: String?
        // Docker sends "Step 1/8 : ..." and its newline as separate objects: pass on whole lines only.
        let lines = LineSplitter(output: output)
        func consume(_ line: Data) {
            guard let decoded = try? JSONDecoder().decode(Line.self, from: line) else { return }
            if let error = decoded.error { failure = error }
            lines.feed(Data((decoded.stream ?? "").utf8))
        }
        for try await buffer in response.body {
            pending.append(contentsOf: buffer.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                consume(pending[pending.startIndex..<newline])
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        if !pending.isEmpty { consume(pending) }
        lines.flush()
        if let failure { throw UserFacingError(.conflict, "the build failed: \(failure.trimmingCharacters(in: .whitespacesAndNewlines))") }
    }

    /// A tar file streamed as a request body, a megabyte at a time.
    private func tarBody(_ path: String) throws -> HTTPClientRequest.Body {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw UserFacingError.invalid("cannot read the tarball \(path)") }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        let chunks = AsyncStream<ByteBuffer> { continuation in
            Thread.detachNewThread {
                defer { try? handle.close(); continuation.finish() }
                while let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty {
                    continuation.yield(ByteBuffer(bytes: data))
                }
            }
        }
        return .stream(chunks, length: .known(size))
    }

    public func createContainer(_ spec: ContainerSpec) async throws -> String {
        struct Body: Encodable {
            struct Host: Encodable {
                struct Restart: Encodable { let Name: String; let MaximumRetryCount: Int }
                struct Binding: Encodable { let HostIp: String; let HostPort: String }
                let Binds: [String]
                let Init: Bool
                let Memory: Int64?
                /// Memory plus swap: equal to Memory, so swap never stretches the limit.
                let MemorySwap: Int64?
                let MemoryReservation: Int64?
                let NanoCpus: Int64?
                let PidsLimit: Int64?
                let NetworkMode: String?
                let RestartPolicy: Restart
                let AutoRemove: Bool
                let PortBindings: [String: [Binding]]?
                let UsernsMode: String?
                let SecurityOpt: [String]?
            }
            struct Empty: Encodable {}
            let Image: String
            let Cmd: [String]?
            let Env: [String]
            let Labels: [String: String]
            let WorkingDir: String?
            let User: String?
            let OpenStdin: Bool
            let StdinOnce: Bool
            let AttachStdin: Bool
            let AttachStdout: Bool
            let AttachStderr: Bool
            let Tty: Bool
            let ExposedPorts: [String: Empty]?
            let HostConfig: Host
        }
        // Published ports go to loopback only, on a port the engine picks: the proxy reaches them, the network does not.
        let port = spec.publishedPort.map { "\($0)/tcp" }
        // A tenant's container: its app's network and user namespace, no privilege gained through setuid files.
        var usernsMode: String?
        var network: String? = spec.networkDisabled ? "none" : nil
        if let sandbox = spec.sandbox {
            let base = try await userNamespaceBase(of: sandbox)
            if try await isPodman() {
                // podman maps this exact range (every container of the app shares it, so
                // they share storage); Docker applies its daemon-wide userns-remap instead.
                // `size` too: without it podman 4.3 sizes the namespace from the image's
                // files, and that path (containers/storage's getMaxSizeFromImage, taking
                // the layer store's lock inside CreateContainer) deadlocked the whole
                // engine under concurrent writers (ci13: every later call hung; goroutine
                // dump in the closing note of that session).
                let map = "0:\(base):\(sandbox.idRange.size)"
                usernsMode = "auto:size=\(sandbox.idRange.size),uidmapping=\(map),gidmapping=\(map)"
            }
            if !spec.networkDisabled {
                try await ensureNetwork(of: sandbox)
                network = sandbox.network
            }
        }
        struct Reply: Decodable { let Id: String }
        let body = Body(Image: spec.image, Cmd: spec.command, Env: spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
                        Labels: ContainerLabel.complete(spec.labels), WorkingDir: spec.workingDirectory, User: spec.user,
                        OpenStdin: spec.openStdin, StdinOnce: spec.openStdin, AttachStdin: spec.openStdin,
                        AttachStdout: true, AttachStderr: true, Tty: spec.tty,
                        ExposedPorts: port.map { [$0: Body.Empty()] },
                        HostConfig: .init(Binds: spec.binds, Init: spec.initProcess, Memory: spec.limits.memoryBytes,
                                          MemorySwap: spec.limits.memoryBytes, MemoryReservation: spec.limits.memoryReservationBytes, NanoCpus: spec.limits.nanoCPUs,
                                          PidsLimit: spec.limits.pids,
                                          NetworkMode: network,
                                          RestartPolicy: .init(Name: spec.restartPolicy.engineName, MaximumRetryCount: spec.restartPolicy.maximumRetryCount), AutoRemove: spec.autoRemove,
                                          PortBindings: port.map { [$0: [.init(HostIp: "127.0.0.1", HostPort: "")]] },
                                          UsernsMode: usernsMode, SecurityOpt: spec.sandbox == nil ? nil : ["no-new-privileges"]))
        let query = spec.name.map { ["name": $0] } ?? [:]
        return try await decode(Reply.self, try await send(.POST, "/containers/create", query: query, json: body)).Id
    }

    public func startContainer(_ id: String) async throws {
        try await expectSuccess(try await send(.POST, "/containers/\(Self.escape(id))/start"), allowing: [304])
    }

    public func waitContainer(_ id: String) async throws -> Int32 {
        struct Reply: Decodable { let StatusCode: Int32 }
        return try await decode(Reply.self, try await send(.POST, "/containers/\(Self.escape(id))/wait", timeout: .hours(24 * 365))).StatusCode
    }

    public func streamLogs(_ id: String, follow: Bool, tail: Int?, _ sink: @escaping @Sendable (OutputChunk) -> Void) async throws {
        var query = ["stdout": "1", "stderr": "1", "follow": follow ? "1" : "0"]
        if let tail { query["tail"] = String(tail) }
        let response = try await send(.GET, "/containers/\(Self.escape(id))/logs", query: query, timeout: .hours(24 * 365))
        guard response.status == .ok else { try await expectSuccess(response); return }
        var decoder = FrameDecoder()
        for try await buffer in response.body {
            for chunk in decoder.feed(Data(buffer.readableBytesView)) { sink(chunk) }
        }
    }

    public func resizeContainer(_ id: String, columns: Int, rows: Int) async throws {
        try await expectSuccess(try await send(.POST, "/containers/\(Self.escape(id))/resize", query: ["w": String(columns), "h": String(rows)]))
    }

    public func createExec(in containerID: String, _ spec: ExecSpec) async throws -> String {
        struct Body: Encodable {
            let Cmd: [String]
            let Env: [String]
            let AttachStdin = true
            let AttachStdout = true
            let AttachStderr = true
            let Tty: Bool
            // No User: the engine runs it as the container's configured user, in its user
            // namespace. Never privileged: an exec must not get more than its container has.
            let Privileged = false
        }
        struct Reply: Decodable { let Id: String }
        let body = Body(Cmd: spec.command, Env: spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }, Tty: spec.tty)
        return try await decode(Reply.self, try await send(.POST, "/containers/\(Self.escape(containerID))/exec", json: body)).Id
    }

    public func resizeExec(_ execID: String, columns: Int, rows: Int) async throws {
        try await expectSuccess(try await send(.POST, "/exec/\(Self.escape(execID))/resize", query: ["w": String(columns), "h": String(rows)]))
    }

    public func inspectExec(_ execID: String) async throws -> ExecState {
        struct Reply: Decodable { let Running: Bool?; let ExitCode: Int32? }
        let reply = try await decode(Reply.self, try await send(.GET, "/exec/\(Self.escape(execID))/json"))
        return ExecState(running: reply.Running ?? false, exitCode: reply.ExitCode)
    }

    public func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        try await expectSuccess(try await send(.POST, "/containers/\(Self.escape(id))/stop", query: ["t": String(timeoutSeconds)],
                                               timeout: .seconds(Int64(timeoutSeconds) + 30)), allowing: [304, 404])
    }

    public func inspectContainer(_ id: String) async throws -> ContainerDetails? {
        struct Reply: Decodable {
            struct State: Decodable { let Status: String?; let Running: Bool?; let ExitCode: Int32?; let StartedAt: String?; let OOMKilled: Bool? }
            struct Host: Decodable { let Memory: Int64? }
            struct Config: Decodable { let Image: String?; let Labels: [String: String]? }
            struct Network: Decodable {
                struct Binding: Decodable { let HostPort: String? }
                let Ports: [String: [Binding]?]?
            }
            let Id: String
            let Name: String?
            let State: State?
            let Config: Config?
            let RestartCount: Int?
            let NetworkSettings: Network?
            let HostConfig: Host?
        }
        let response = try await send(.GET, "/containers/\(Self.escape(id))/json")
        if response.status == .notFound { _ = try await response.body.collect(upTo: 1 << 20); return nil }
        let reply = try await decode(Reply.self, response)
        var ports: [Int: Int] = [:]
        for (key, bindings) in reply.NetworkSettings?.Ports ?? [:] {
            guard let container = Int(key.split(separator: "/").first ?? ""),
                  let host = bindings?.compactMap({ $0.HostPort.flatMap(Int.init) }).first else { continue }
            ports[container] = host
        }
        let started = reply.State?.StartedAt.flatMap { try? Date($0.replacingOccurrences(of: #"\.\d+"#, with: "", options: .regularExpression), strategy: .iso8601) }
        return ContainerDetails(id: reply.Id, name: (reply.Name ?? "").hasPrefix("/") ? String(reply.Name!.dropFirst()) : reply.Name ?? "",
                                image: reply.Config?.Image ?? "", running: reply.State?.Running ?? false,
                                status: reply.State?.Status ?? "", exitCode: reply.State?.ExitCode ?? 0,
                                restartCount: reply.RestartCount ?? 0, startedAt: started,
                                labels: reply.Config?.Labels ?? [:], hostPorts: ports, oomKilled: reply.State?.OOMKilled ?? false,
                                memoryLimit: reply.HostConfig?.Memory.flatMap { $0 > 0 ? $0 : nil })
    }

    public func renameContainer(_ id: String, to name: String) async throws {
        try await expectSuccess(try await send(.POST, "/containers/\(Self.escape(id))/rename", query: ["name": name]))
    }

    public func commitContainer(_ id: String, reference: String, changes: [String]) async throws {
        // Repository and tag apart, as both engines read them; podman wants a JSON body (no config overrides).
        let colon = reference.lastIndex(of: ":").flatMap { $0 > (reference.lastIndex(of: "/") ?? reference.startIndex) ? $0 : nil }
        var query = ["container": id, "repo": colon.map { String(reference[..<$0]) } ?? reference,
                     "tag": colon.map { String(reference[reference.index(after: $0)...]) } ?? "latest"]
        if !changes.isEmpty { query["changes"] = changes.joined(separator: "\n") }
        try await expectSuccess(try await send(.POST, "/commit", query: query, body: .bytes(ByteBuffer(string: "{}")), contentType: "application/json"))
    }

    public func tagImage(_ reference: String, as newReference: String) async throws {
        let colon = newReference.lastIndex(of: ":").flatMap { $0 > (newReference.lastIndex(of: "/") ?? newReference.startIndex) ? $0 : nil }
        let query = ["repo": colon.map { String(newReference[..<$0]) } ?? newReference,
                     "tag": colon.map { String(newReference[newReference.index(after: $0)...]) } ?? "latest"]
        try await expectSuccess(try await send(.POST, "/images/\(Self.escape(reference))/tag", query: query))
    }

    public func pushImage(_ reference: String, registryAuth: String?) async throws {
        let colon = reference.lastIndex(of: ":").flatMap { $0 > (reference.lastIndex(of: "/") ?? reference.startIndex) ? $0 : nil }
        let name = colon.map { String(reference[..<$0]) } ?? reference
        let tag = colon.map { String(reference[reference.index(after: $0)...]) } ?? "latest"
        var query = ["tag": tag]
        // A registry on this host's loopback speaks plain HTTP, as Docker assumes for 127.0.0.0/8;
        // podman asks for TLS unless told (its compat push takes tlsVerify, Docker ignores it).
        if Self.isLoopbackRegistry(name) { query["tlsVerify"] = "false" }
        var request = HTTPClientRequest(url: url("/images/\(Self.escape(name))/push", query))
        request.method = .POST
        request.headers.add(name: "Host", value: "engine")
        // Both engines want the header even for a registry without auth.
        request.headers.add(name: "X-Registry-Auth", value: registryAuth ?? "e30=")
        let response: HTTPClientResponse
        do { response = try await client.execute(request, timeout: .minutes(30)) } catch { throw unreachable(because: error) }
        // A 200 streams progress as JSON lines; a failed push says so in one of them.
        let body = String(buffer: try await response.body.collect(upTo: 64 << 20))
        guard response.status == .ok else {
            throw UserFacingError(.unavailable, "pushing \(reference) failed: \(response.status.code) \(body.prefix(300))")
        }
        for line in body.split(separator: "\n") {
            guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let error = object["error"] as? String else { continue }
            throw UserFacingError(.unavailable, "pushing \(reference) to its registry failed: \(error) (registry:login stores the registry's credentials)")
        }
    }

    /// `127.x.x.x[:port]/...`, `localhost[:port]/...` or `[::1][:port]/...`: never TLS-verified,
    /// as Docker treats loopback registries as insecure by default. Any other registry keeps TLS.
    static func isLoopbackRegistry(_ repository: String) -> Bool {
        guard let slash = repository.firstIndex(of: "/") else { return false }
        let host = String(repository[..<slash])
        let bare = host.hasPrefix("[") ? String(host.dropFirst().prefix { $0 != "]" })
            : String(host.split(separator: ":", maxSplits: 1).first ?? "")
        if bare == "localhost" || bare == "::1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    public func removeImage(_ reference: String) async throws {
        try await expectSuccess(try await send(.DELETE, "/images/\(Self.escape(reference))"), allowing: [404, 409])
    }

    public func changes(_ id: String) async throws -> [FileChange] {
        struct Change: Decodable { let Path: String; let Kind: Int }
        let changes = try await decode([Change]?.self, try await send(.GET, "/containers/\(Self.escape(id))/changes")) ?? []
        return changes.compactMap { change in FileChange.Kind(rawValue: change.Kind).map { FileChange(path: change.Path, kind: $0) } }
    }

    public func removeContainer(_ id: String, force: Bool) async throws {
        var attempt = 0
        while true {
            let response = try await send(.DELETE, "/containers/\(Self.escape(id))", query: ["force": force ? "1" : "0", "v": "1"])
            let body = try await response.body.collect(upTo: 1 << 20)
            // Gone already, or (Docker, AutoRemove) being removed by the engine itself: either way it goes.
            if response.status == .notFound || (response.status == .conflict && String(buffer: body).contains("already in progress")) { return }
            // podman 4.3 under load: "unlinkat .../userdata/shm: device or resource busy" right
            // after the container ended (seen in e2e runs); its cleanup is still unmounting.
            attempt += 1
            if response.status == .internalServerError, String(buffer: body).contains("device or resource busy"), attempt < 10 {
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            try check(response, body)
            return
        }
    }

    public func listContainers(labels: [String: String]) async throws -> [ContainerSummary] {
        struct Item: Decodable {
            let Id: String
            let Names: [String]?
            let State: String?
            let Labels: [String: String]?
            let Image: String?
            let Command: String?
            let Created: Int64?
        }
        let filters = try JSONEncoder().encode(["label": labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }])
        let items = try await decode([Item].self, try await send(.GET, "/containers/json", query: ["all": "1", "filters": String(decoding: filters, as: UTF8.self)]))
        return items.map {
            ContainerSummary(id: $0.Id, names: $0.Names ?? [], state: $0.State ?? "", labels: $0.Labels ?? [:], image: $0.Image ?? "",
                             command: $0.Command ?? "", created: Date(timeIntervalSince1970: TimeInterval($0.Created ?? 0)))
        }
    }

    // MARK: Tenant sandboxes

    public func ensureNetwork(of sandbox: TenantSandbox) async throws {
        let podman = try await isPodman()
        if podman { try BridgeIsolation.ensure() }
        let existing = try await send(.GET, "/networks/\(Self.escape(sandbox.network))")
        _ = try await existing.body.collect(upTo: 1 << 20)
        if existing.status == .ok { return }
        if podman { try BridgeIsolation.ensure(force: true) }
        struct Body: Encodable {
            let Name: String
            let Driver = "bridge"
            let CheckDuplicate = true
            let Labels: [String: String]
            // No options: podman's compat API isolates such networks from each other
            // by itself (netavark's "isolate"), and Docker isolates bridges always.
            // Measured on podman 4.3: passing Options {"isolate": "true"} is stored but
            // netavark then adds no isolation rules; the attack suite pins this.
        }
        let response = try await send(.POST, "/networks/create",
                                      json: Body(Name: sandbox.network, Labels: ["org.slipway.app-id": String(sandbox.appID), ContainerLabel.instance: sandbox.instance]))
        // 409: made meanwhile by a concurrent deploy of the same app.
        try await expectSuccess(response, allowing: [409])
    }

    public func removeNetwork(of sandbox: TenantSandbox) async throws {
        // 404 gone already; 409 (Docker) or 500 (podman) while a container still uses it: left for the next destroy.
        try await expectSuccess(try await send(.DELETE, "/networks/\(Self.escape(sandbox.network))"), allowing: [404, 409, 500])
    }

    public func connectNetwork(of sandbox: TenantSandbox, container id: String, alias: String) async throws {
        struct Endpoint: Encodable { let Aliases: [String] }
        struct Body: Encodable { let Container: String; let EndpointConfig: Endpoint }
        let response = try await send(.POST, "/networks/\(Self.escape(sandbox.network))/connect",
                                      json: Body(Container: id, EndpointConfig: Endpoint(Aliases: [alias])))
        let body = try await response.body.collect(upTo: 1 << 20)
        // Connected already: Docker says 403 "already exists", podman 500 "already ... connected".
        if (200..<300).contains(response.status.code) || String(buffer: body).contains("already") { return }
        try check(response, body)
    }

    public func disconnectNetwork(of sandbox: TenantSandbox, container id: String) async throws {
        struct Body: Encodable { let Container: String; let Force: Bool }
        let response = try await send(.POST, "/networks/\(Self.escape(sandbox.network))/disconnect", json: Body(Container: id, Force: true))
        let body = try await response.body.collect(upTo: 1 << 20)
        let text = String(buffer: body).lowercased()
        // Not connected, or the network or container gone: nothing left to undo.
        if (200..<300).contains(response.status.code) || response.status.code == 404
            || ["not connected", "no such", "not found"].contains(where: text.contains) { return }
        try check(response, body)
    }

    public func userNamespaceBase(of sandbox: TenantSandbox) async throws -> UInt32 {
        if try await isPodman() { return sandbox.idRange.hostBase }
        // Docker maps every container through one daemon-wide range (`userns-remap`),
        // or none: then a container's root is the host's root, which Slipway refuses.
        struct Info: Decodable { let SecurityOptions: [String]? }
        let info = try await decode(Info.self, try await send(.GET, "/info"))
        let remapped = (info.SecurityOptions ?? []).contains { $0.contains("name=userns") }
        guard remapped, let base = Self.subordinateBase(user: "dockremap") else {
            throw UserFacingError(.unavailable, "the Docker engine at \(endpoint) runs containers as host root; set \"userns-remap\": \"default\" in /etc/docker/daemon.json and restart Docker (see SECURITY in slipway(8))")
        }
        return base
    }

    /// The first subordinate uid of `user` in /etc/subuid (Docker's remap range).
    static func subordinateBase(user: String) -> UInt32? {
        guard let text = try? String(contentsOfFile: "/etc/subuid", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":")
            if fields.count == 3, fields[0] == user, let base = UInt32(fields[1]) { return base }
        }
        return nil
    }

    // MARK: Helpers

    static func escape(_ component: String) -> String {
        // '/' stays: image references contain it and the engines route on the raw path.
        component.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/@"))) ?? component
    }
}

/// Set once, read by every request after.
private final class KindCache: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Bool?
    var value: Bool? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

private struct AnyEncodable: Encodable {
    let value: Encodable
    init(_ value: Encodable) { self.value = value }
    func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}
