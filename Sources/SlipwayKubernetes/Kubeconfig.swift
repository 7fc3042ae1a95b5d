import Foundation
import SlipwayCore

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
        do { root = try MiniYAML.parse(text) } catch let error as MiniYAML.Failure {
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

/// The block-style YAML subset kubectl writes (mappings, sequences, plain and quoted
/// scalars, comments, `{}`/`[]`), and JSON. Enough for a kubeconfig; not a general
/// YAML parser (no anchors, multi-line scalars or flow collections with content).
enum MiniYAML {
    struct Failure: Error { let line: Int; let reason: String }

    static func parse(_ text: String) throws -> KubeValue {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) {
            return fromJSON(object)
        }
        var lines: [(number: Int, indent: Int, text: String)] = []
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = stripComment(raw.replacingOccurrences(of: "\r", with: ""))
            let content = line.drop { $0 == " " }
            if content.isEmpty || content == "---" { continue }
            if line.hasPrefix("\t") { throw Failure(line: index + 1, reason: "tabs are not YAML indentation") }
            lines.append((index + 1, line.count - content.count, String(content)))
        }
        var position = 0
        guard !lines.isEmpty else { return .object([:]) }
        let value = try block(&position, lines, indent: lines[0].indent)
        if position < lines.count { throw Failure(line: lines[position].number, reason: "unexpected indentation") }
        return value
    }

    static func fromJSON(_ any: Any) -> KubeValue {
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

    private static func block(_ position: inout Int, _ lines: [(number: Int, indent: Int, text: String)], indent: Int) throws -> KubeValue {
        if lines[position].text.hasPrefix("- ") || lines[position].text == "-" {
            var items: [KubeValue] = []
            while position < lines.count, lines[position].indent == indent, lines[position].text.hasPrefix("-") {
                let line = lines[position]
                let rest = line.text.dropFirst().drop { $0 == " " }
                if rest.isEmpty {
                    position += 1
                    guard position < lines.count, lines[position].indent > indent else { items.append(.null); continue }
                    items.append(try block(&position, lines, indent: lines[position].indent))
                    continue
                }
                // "- key: value" opens a mapping whose keys sit at the dash's content column.
                let column = line.indent + (line.text.count - rest.count)
                var copy = lines
                copy[position] = (line.number, column, String(rest))
                if splitKey(String(rest)) != nil {
                    items.append(try block(&position, copy, indent: column))
                } else {
                    items.append(try scalar(String(rest), line: line.number))
                    position += 1
                }
            }
            return .array(items)
        }
        var object: [String: KubeValue] = [:]
        while position < lines.count, lines[position].indent == indent, !lines[position].text.hasPrefix("- ") {
            let line = lines[position]
            guard let (key, rest) = splitKey(line.text) else { throw Failure(line: line.number, reason: "expected key: value") }
            position += 1
            if rest.isEmpty {
                if position < lines.count, lines[position].indent > indent || (lines[position].indent == indent && lines[position].text.hasPrefix("- ")) {
                    object[key] = try block(&position, lines, indent: lines[position].indent)
                } else {
                    object[key] = .null
                }
            } else {
                object[key] = try scalar(rest, line: line.number)
            }
        }
        return .object(object)
    }

    /// `key: rest` (rest may be empty), with a quoted or plain key.
    private static func splitKey(_ text: String) -> (String, String)? {
        if let quote = text.first, quote == "\"" || quote == "'" {
            guard let end = text.dropFirst().firstIndex(of: quote) else { return nil }
            let after = text[text.index(after: end)...]
            guard after.hasPrefix(":") else { return nil }
            return (String(text[text.index(after: text.startIndex)..<end]), after.dropFirst().trimmingCharacters(in: .whitespaces))
        }
        guard let range = text.range(of: ": ") ?? (text.hasSuffix(":") ? text.index(before: text.endIndex)..<text.endIndex : nil) else { return nil }
        let key = String(text[..<range.lowerBound])
        guard !key.isEmpty, !key.contains(" ") || !key.hasPrefix("{") else { return nil }
        return (key, text[range.upperBound...].trimmingCharacters(in: .whitespaces))
    }

    private static func scalar(_ text: String, line: Int) throws -> KubeValue {
        if text == "{}" { return .object([:]) }
        if text == "[]" { return .array([]) }
        if text.hasPrefix("\"") {
            guard text.count >= 2, text.hasSuffix("\""), let data = text.data(using: .utf8),
                  let value = try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) as? String else {
                throw Failure(line: line, reason: "unterminated double-quoted string")
            }
            return .string(value)
        }
        if text.hasPrefix("'") {
            guard text.count >= 2, text.hasSuffix("'") else { throw Failure(line: line, reason: "unterminated single-quoted string") }
            return .string(String(text.dropFirst().dropLast()).replacingOccurrences(of: "''", with: "'"))
        }
        if text.hasPrefix("{") || text.hasPrefix("[") || text.hasPrefix("&") || text.hasPrefix("*") || text.hasPrefix("|") || text.hasPrefix(">") {
            throw Failure(line: line, reason: "flow collections, anchors and block scalars are not supported here")
        }
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null", "~": return .null
        default: return .string(text)
        }
    }

    /// Drops a ` #` comment outside quotes.
    private static func stripComment(_ line: String) -> String {
        var quote: Character?
        var previous: Character = " "
        for (offset, character) in line.enumerated() {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#", previous == " " {
                return String(line.prefix(offset)).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
            }
            previous = character
        }
        return line.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
}
