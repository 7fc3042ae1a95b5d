import Foundation
import SlipwayCore
import Yams

/// What the API client needs from a kubeconfig file: the server of one context and
/// how to authenticate to it. Read the way kubectl reads it: `clusters`, `users` and
/// `contexts` by name, the context named by `current-context` unless one is given;
/// file paths in it are relative to the file's own directory.
public struct Kubeconfig: Sendable, Equatable {
    /// `https://host:6443` (or `http://` for a local test server).
    public var server: String
    /// PEM of the CA that signed the server's certificate (nil: the system's roots).
    public var certificateAuthorityPEM: String?
    /// `insecure-skip-tls-verify: true` (kubectl's escape hatch; never the default).
    public var insecureSkipTLSVerify: Bool
    /// Bearer token auth (`token`, or `tokenFile`).
    public var token: String?
    /// Client certificate auth: PEM certificate (chain) and key.
    public var clientCertificatePEM: String?
    public var clientKeyPEM: String?
    /// The context's name (its namespace is unused: every app has its own).
    public var context: String

    public init(server: String, certificateAuthorityPEM: String? = nil, insecureSkipTLSVerify: Bool = false,
                token: String? = nil, clientCertificatePEM: String? = nil, clientKeyPEM: String? = nil, context: String = "test") {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.token = token
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.context = context
    }

    /// Reads the file at `path` (the `kubeconfig` setting) and picks `context`.
    public static func load(path: String, context: String?) throws -> Kubeconfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserFacingError(.unavailable, "cannot read the kubeconfig file \(path) (the kubeconfig setting in etc/slipway.toml); an admin can check it exists and the server's user can read it")
        }
        let directory = (path as NSString).deletingLastPathComponent
        return try parse(String(decoding: data, as: UTF8.self), context: context, directory: directory, source: path)
    }

    /// Parses a kubeconfig (YAML as kubectl writes it, or JSON). `directory`: where
    /// relative file paths start.
    public static func parse(_ text: String, context wanted: String?, directory: String, source: String = "the kubeconfig") throws -> Kubeconfig {
        let root: KubeValue
        do { root = try KubeconfigYAML.parse(text) } catch let error as KubeconfigYAML.Failure {
            throw UserFacingError.invalid("\(source) is not a kubeconfig this server can read (line \(error.line): \(error.reason))")
        }
        func bad(_ what: String) -> UserFacingError {
            UserFacingError.invalid("\(source): \(what); `kubectl config view --minify --raw` shows what a working one holds")
        }
        func named(_ list: String, _ name: String, _ member: String) throws -> KubeValue {
            guard case .array(let items)? = root[list],
                  let item = items.first(where: { $0["name"]?.stringValue == name }), let value = item[member] else {
                throw bad("no \(list.dropLast()) named \(quoted(name)) in \(list)")
            }
            return value
        }
        guard let contextName = wanted ?? root["current-context"]?.stringValue, !contextName.isEmpty else {
            throw bad("it sets no current-context; set kube_context in etc/slipway.toml")
        }
        let context = try named("contexts", contextName, "context")
        guard let clusterName = context["cluster"]?.stringValue else { throw bad("context \(quoted(contextName)) names no cluster") }
        let cluster = try named("clusters", clusterName, "cluster")
        let user: KubeValue = try context["user"]?.stringValue.map { try named("users", $0, "user") } ?? .object([:])

        func file(_ path: String) throws -> String {
            let full = path.hasPrefix("/") ? path : directory + "/" + path
            guard let data = FileManager.default.contents(atPath: full) else { throw bad("cannot read \(full)") }
            return String(decoding: data, as: UTF8.self)
        }
        /// `<name>-data` (base64 PEM) or `<name>` (a file of PEM).
        func pem(_ object: KubeValue, _ name: String) throws -> String? {
            if let encoded = object[name + "-data"]?.stringValue {
                guard let data = Data(base64Encoded: encoded.filter { !$0.isWhitespace }) else { throw bad("\(name)-data is not base64") }
                return String(decoding: data, as: UTF8.self)
            }
            return try object[name]?.stringValue.map(file)
        }
        guard let server = cluster["server"]?.stringValue, server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw bad("cluster \(quoted(clusterName)) has no https:// server")
        }
        var token = user["token"]?.stringValue
        if token == nil, let path = user["tokenFile"]?.stringValue {
            token = try file(path).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let certificate = try pem(user, "client-certificate"), key = try pem(user, "client-key")
        guard (certificate == nil) == (key == nil) else { throw bad("user of context \(quoted(contextName)) has a client certificate without its key, or a key without its certificate") }
        if user["exec"] != nil || user["auth-provider"] != nil, token == nil, certificate == nil {
            throw bad("user of context \(quoted(contextName)) authenticates with an exec or auth-provider plugin, which Slipway does not run; give it a token (a service account's) or a client certificate")
        }
        return Kubeconfig(server: server.hasSuffix("/") ? String(server.dropLast()) : server,
                          certificateAuthorityPEM: try pem(cluster, "certificate-authority"),
                          insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] == .bool(true) || cluster["insecure-skip-tls-verify"]?.stringValue == "true",
                          token: token, clientCertificatePEM: certificate, clientKeyPEM: key, context: contextName)
    }
}

/// A kubeconfig's YAML (or JSON, which is YAML) as a `KubeValue`, through Yams
/// (libyaml): anchors, aliases and merge keys, flow collections, block scalars.
/// Only the JSON schema's scalars are typed (bool, int, null); anything else (a
/// float, a date) stays the text it was, so a context named `1.10` is still a name.
enum KubeconfigYAML {
    struct Failure: Error { let line: Int; let reason: String }

    /// A new one per parse: Yams' `Constructor` is a class, not `Sendable`.
    private static var constructor: Constructor { Constructor(
        [.str: String.construct, .bool: Bool.construct, .null: NSNull.construct, .int: Int.construct],
        Constructor.defaultMappingMap, Constructor.defaultSequenceMap) }

    static func parse(_ text: String) throws -> KubeValue {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text, .default, constructor) } catch let error as YamlError {
            throw failure(error)
        }
        return loaded.map(value) ?? .object([:])
    }

    private static func value(_ any: Any) -> KubeValue {
        switch any {
        case let object as [AnyHashable: Any]:
            return .object(Dictionary(object.map { ("\($0.key.base)", value($0.value)) }, uniquingKeysWith: { _, last in last }))
        case let array as [Any]: return .array(array.map(value))
        case let bool as Bool: return .bool(bool)
        case let int as Int: return .int(Int64(int))
        case let string as String: return .string(string)
        default: return .null
        }
    }

    /// libyaml's problem and the line it is on (1-based).
    private static func failure(_ error: YamlError) -> Failure {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return Failure(line: mark.line, reason: [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": "))
        case .reader(let problem, _, _, _): return Failure(line: 1, reason: problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return Failure(line: context.mark.line, reason: "duplicate keys \(duplicates.joined(separator: ", "))")
        default: return Failure(line: 1, reason: "\(error)")
        }
    }
}

extension KubeValue {
    /// A value from what JSONSerialization returns (an API response's body).
    public static func fromJSON(_ any: Any) -> KubeValue {
        switch any {
        case let object as [String: Any]: return .object(object.mapValues(fromJSON))
        case let array as [Any]: return .array(array.map(fromJSON))
        // JSONSerialization's booleans are NSNumbers of ObjC type "c" (char).
        case let number as NSNumber where String(cString: number.objCType) == "c": return .bool(number.boolValue)
        case let number as NSNumber: return .int(number.int64Value)
        case let string as String: return .string(string)
        default: return .null
        }
    }
}
