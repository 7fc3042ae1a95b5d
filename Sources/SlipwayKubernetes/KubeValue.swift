import Foundation

/// A JSON value as a Kubernetes object's body holds it. Objects are dictionaries, so
/// every serialization sorts their keys: the same input always gives the same bytes
/// (golden files, server-side apply without spurious diffs).
public indirect enum KubeValue: Sendable, Equatable, Encodable,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([KubeValue])
    case object([String: KubeValue])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: KubeValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, KubeValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(_ int: Int) { self = .int(Int64(int)) }
    public init(_ strings: [String]) { self = .array(strings.map { .string($0) }) }
    public init(_ strings: [String: String]) { self = .object(strings.mapValues { .string($0) }) }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let values): try container.encode(values)
        case .object(let values): try container.encode(values)
        }
    }

    /// The member `key` of an object (nil for anything else).
    public subscript(key: String) -> KubeValue? {
        if case .object(let values) = self { return values[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// Compact JSON with sorted keys, on one line.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding these cases cannot fail.
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Block-style YAML with sorted keys. Every string is double-quoted with JSON's
    /// escapes (a subset of YAML's), so no value is ever read back as a number, a
    /// boolean or a null ("on", "1e3", "null" stay strings).
    public func yaml() -> String {
        lines(indent: 0).joined(separator: "\n") + "\n"
    }

    private var isScalar: Bool {
        switch self {
        case .array(let values): values.isEmpty
        case .object(let values): values.isEmpty
        default: true
        }
    }

    private var scalarText: String {
        switch self {
        case .string(let value): Self.quote(value)
        case .int(let value): String(value)
        case .bool(let value): value ? "true" : "false"
        case .null: "null"
        case .array: "[]"
        case .object: "{}"
        }
    }

    private func lines(indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .object(let values) where !values.isEmpty:
            return values.keys.sorted().flatMap { key -> [String] in
                let value = values[key]!
                let name = Self.yamlKey(key)
                if value.isScalar { return ["\(pad)\(name): \(value.scalarText)"] }
                // Sequences under a key sit at the key's indentation (the usual style).
                if case .array = value { return ["\(pad)\(name):"] + value.lines(indent: indent) }
                return ["\(pad)\(name):"] + value.lines(indent: indent + 2)
            }
        case .array(let values) where !values.isEmpty:
            return values.flatMap { item -> [String] in
                if item.isScalar { return ["\(pad)- \(item.scalarText)"] }
                var inner = item.lines(indent: indent + 2)
                inner[0] = pad + "- " + inner[0].dropFirst(indent + 2)
                return inner
            }
        default:
            return [pad + scalarText]
        }
    }

    /// Keys such as `app.kubernetes.io/name` stay plain; anything else is quoted.
    private static func yamlKey(_ key: String) -> String {
        let plain = key.unicodeScalars.first.map { CharacterSet.letters.contains($0) } ?? false
            && key.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_./-".unicodeScalars.contains($0) }
        return plain ? key : quote(key)
    }

    /// A double-quoted string valid in JSON and YAML alike.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0xFEFF:
                out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
