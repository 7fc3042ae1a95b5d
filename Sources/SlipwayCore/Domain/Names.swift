/// A name checked against its rule when it is made, so code that holds one never
/// re-validates. Each conforming type states its grammar once.
public protocol ValidatedName: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// What the user sees in errors: "app name", "user name".
    static var kind: String { get }
    /// The rule in words, for the error message.
    static var rule: String { get }
    static func isValid(_ candidate: String) -> Bool
    var rawValue: String { get }
    init(uncheckedRawValue: String)
}

extension ValidatedName {
    /// Validates `raw`; throws `error: invalid <kind> "<raw>": <rule>`.
    public init(_ raw: String) throws {
        guard Self.isValid(raw) else {
            throw UserFacingError.invalid("invalid \(Self.kind) \(quoted(raw)): \(Self.rule)")
        }
        self.init(uncheckedRawValue: raw)
    }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Character-class matching without regex machinery: names are checked on every command.
enum NameGrammar {
    static func isLowerAlnum(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
    static func isLower(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) }
    static func isAlnum(_ c: Unicode.Scalar) -> Bool { isLowerAlnum(c) || ("A"..."Z").contains(c) }

    /// `first` must match the first scalar, `rest` every other one, length in `lengths`.
    static func matches(_ s: String, lengths: ClosedRange<Int>,
                        first: (Unicode.Scalar) -> Bool, rest: (Unicode.Scalar) -> Bool,
                        last: ((Unicode.Scalar) -> Bool)? = nil) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard lengths.contains(scalars.count), let head = scalars.first, first(head) else { return false }
        if let last, scalars.count > 1, !last(scalars[scalars.count - 1]) { return false }
        return scalars.dropFirst().allSatisfy(rest)
    }
}

/// A user's name: `^[a-z][a-z0-9-]{0,31}$`.
public struct UserName: ValidatedName {
    public static let kind = "user name"
    public static let rule = "use 1-32 characters: a lowercase letter, then lowercase letters, digits or '-'"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...32, first: NameGrammar.isLower,
                            rest: { NameGrammar.isLowerAlnum($0) || $0 == "-" })
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// An app's name; also a DNS label, so it can become `<app>.<domain>`.
public struct AppName: ValidatedName {
    public static let kind = "app name"
    public static let rule = "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...63, first: NameGrammar.isLowerAlnum,
                            rest: { NameGrammar.isLowerAlnum($0) || $0 == "-" },
                            last: NameGrammar.isLowerAlnum)
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// The name a user gives one of their SSH keys ("laptop", "ci@build-1").
public struct KeyName: ValidatedName {
    public static let kind = "key name"
    public static let rule = "use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...64, first: NameGrammar.isAlnum,
                            rest: { NameGrammar.isAlnum($0) || "._@-".unicodeScalars.contains($0) })
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// An environment variable name: `^[A-Za-z_][A-Za-z0-9_]*$`.
public struct EnvKey: ValidatedName {
    public static let kind = "config key"
    public static let rule = "use letters, digits and '_', not starting with a digit (at most 255 characters)"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...255, first: { NameGrammar.isAlnum($0) && !("0"..."9").contains($0) || $0 == "_" },
                            rest: { NameGrammar.isAlnum($0) || $0 == "_" })
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// A managed storage's name; also its directory name under `<data-dir>/storage/`.
public struct StorageName: ValidatedName {
    public static let kind = "storage name"
    public static let rule = "use 1-63 lowercase letters, digits or '-', starting with a letter or digit"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...63, first: NameGrammar.isLowerAlnum,
                            rest: { NameGrammar.isLowerAlnum($0) || $0 == "-" })
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}
