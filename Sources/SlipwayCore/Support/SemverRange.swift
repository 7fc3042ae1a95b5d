import Foundation

/// The part of npm's semver ranges `engines.node` uses: `>=`, `>`, `<=`, `<`, `=`,
/// exact versions, `^`, `~`, `x`/`*` wildcards and partial versions (`18`, `18.2`),
/// spaces between comparators (and), `||` between sets (or), and `A - B` hyphen
/// ranges. Pre-release tags are not compared (the builder's node has none).
public struct SemverRange: Sendable, Equatable {
    /// A version as three numbers.
    public typealias Version = [Int]

    /// One comparison against a version.
    enum Op: String, Sendable { case ge = ">=", gt = ">", le = "<=", lt = "<" }
    struct Comparator: Sendable, Equatable {
        let op: Op
        let version: Version
        func matches(_ v: Version) -> Bool {
            switch op {
            case .ge: return !v.lexicographicallyPrecedes(version)
            case .gt: return version.lexicographicallyPrecedes(v)
            case .le: return !version.lexicographicallyPrecedes(v)
            case .lt: return v.lexicographicallyPrecedes(version)
            }
        }
    }

    /// Sets joined by `||`; each is comparators that must all hold.
    let sets: [[Comparator]]
    public let text: String

    /// Parses `text`; throws a user error naming what Slipway reads.
    public init(_ text: String) throws {
        self.text = text
        func bad() -> UserFacingError {
            .invalid("engines.node \(quoted(text)) is not a version range Slipway reads: use forms such as 18, >=18, ^18.2.0, ~18.19, 18.x, or 16 || 18")
        }
        guard text.utf8.count <= 256 else { throw bad() }
        var sets: [[Comparator]] = []
        for part in text.components(separatedBy: "||") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if let hyphen = trimmed.range(of: " - ") {
                guard let low = Self.partial(String(trimmed[..<hyphen.lowerBound]).trimmingCharacters(in: .whitespaces)),
                      let high = Self.partial(String(trimmed[hyphen.upperBound...]).trimmingCharacters(in: .whitespaces)) else { throw bad() }
                sets.append([Comparator(op: .ge, version: Self.filled(low))] + Self.upper(high, inclusive: true))
                continue
            }
            var set: [Comparator] = []
            // ">= 18" is read as ">=18", as npm does.
            var words = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            var index = 0
            var joined: [String] = []
            while index < words.count {
                if ["<", "<=", ">", ">=", "=", "^", "~", "v"].contains(words[index]), index + 1 < words.count {
                    joined.append(words[index] + words[index + 1]); index += 2
                } else {
                    joined.append(words[index]); index += 1
                }
            }
            words = joined
            for word in words {
                guard let comparators = Self.comparators(word) else { throw bad() }
                set += comparators
            }
            sets.append(set)
        }
        guard !sets.isEmpty else { throw bad() }
        self.sets = sets
    }

    /// Whether `version` ("18.19.0", "v18.19.0") is in the range.
    public func contains(_ version: String) -> Bool {
        guard let v = Self.partial(version), v.count == 3 else { return false }
        return sets.contains { set in set.allSatisfy { $0.matches(v) } }
    }

    /// "18", "18.2", "18.2.1", "18.x", "*", "" as the numbers given (wildcards end it);
    /// nil when not a version.
    static func partial(_ raw: String) -> Version? {
        var text = Substring(raw)
        if text.hasPrefix("v") || text.hasPrefix("=") { text = text.dropFirst() }
        // Pre-release and build tags are not compared.
        if let cut = text.firstIndex(where: { $0 == "-" || $0 == "+" }) { text = text[..<cut] }
        if text.isEmpty || text == "*" || text.lowercased() == "x" { return [] }
        var numbers: Version = []
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 3 else { return nil }
        for (i, part) in parts.enumerated() {
            if ["x", "X", "*"].contains(part) {
                // Everything after a wildcard must be a wildcard too.
                guard parts[i...].allSatisfy({ ["x", "X", "*"].contains($0) }) else { return nil }
                break
            }
            guard !part.isEmpty, part.count <= 9, part.allSatisfy(\.isASCII), let n = Int(part), n >= 0 else { return nil }
            numbers.append(n)
        }
        return numbers
    }

    private static func filled(_ v: Version) -> Version { v + Array(repeating: 0, count: 3 - v.count) }

    /// `< next` for a partial upper bound (`<= 18` is `< 19.0.0`), `<= v` for a whole one.
    private static func upper(_ v: Version, inclusive: Bool) -> [Comparator] {
        switch v.count {
        case 0: return []
        case 3: return [Comparator(op: inclusive ? .le : .lt, version: v)]
        case 1: return [Comparator(op: .lt, version: [v[0] + 1, 0, 0])]
        default: return [Comparator(op: .lt, version: [v[0], v[1] + 1, 0])]
        }
    }

    /// One word of a range (`>=18.2`, `^1.2.3`, `~18`, `18.x`).
    private static func comparators(_ word: String) -> [Comparator]? {
        // An operator without a version ("^", ">=") is a typo, not "any".
        if let last = word.last, "<>=^~".contains(last) { return nil }
        for op in [">=", "<=", ">", "<"] where word.hasPrefix(op) {
            guard let v = partial(String(word.dropFirst(op.count))) else { return nil }
            switch op {
            case ">=": return v.isEmpty ? [] : [Comparator(op: .ge, version: filled(v))]
            case "<=": return v.isEmpty ? [] : upper(v, inclusive: true)
            case ">":
                switch v.count {
                case 0: return [Comparator(op: .lt, version: [0, 0, 0])]  // nothing is above "any"
                case 3: return [Comparator(op: .gt, version: v)]
                case 1: return [Comparator(op: .ge, version: [v[0] + 1, 0, 0])]
                default: return [Comparator(op: .ge, version: [v[0], v[1] + 1, 0])]
                }
            default:
                return v.isEmpty ? [Comparator(op: .lt, version: [0, 0, 0])] : [Comparator(op: .lt, version: filled(v))]
            }
        }
        if word.hasPrefix("^") {
            guard let v = partial(String(word.dropFirst())) else { return nil }
            if v.isEmpty { return [] }
            let low = Comparator(op: .ge, version: filled(v))
            if v[0] > 0 || v.count == 1 { return [low, Comparator(op: .lt, version: [v[0] + 1, 0, 0])] }
            if v[1] > 0 || v.count == 2 { return [low, Comparator(op: .lt, version: [0, v[1] + 1, 0])] }
            return [low, Comparator(op: .lt, version: [0, 0, v[2] + 1])]
        }
        if word.hasPrefix("~") {
            var rest = word.dropFirst()
            if rest.hasPrefix(">") { rest = rest.dropFirst() }  // "~>" is read as "~"
            guard let v = partial(String(rest)) else { return nil }
            if v.isEmpty { return [] }
            let low = Comparator(op: .ge, version: filled(v))
            if v.count == 1 { return [low, Comparator(op: .lt, version: [v[0] + 1, 0, 0])] }
            return [low, Comparator(op: .lt, version: [v[0], v[1] + 1, 0])]
        }
        guard let v = partial(word) else { return nil }
        if v.isEmpty { return [] }
        if v.count == 3 { return [Comparator(op: .ge, version: v), Comparator(op: .le, version: v)] }
        return [Comparator(op: .ge, version: filled(v))] + upper(v, inclusive: true)
    }
}
