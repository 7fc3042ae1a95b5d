import Crypto
import Foundation

/// Names and label values Kubernetes accepts, made from Slipway's names.
///
/// Object names are DNS-1123 labels (lowercase letters, digits and '-', starting and
/// ending with a letter or digit, at most 63); Service names must also start with a
/// letter (RFC 1035). A name that had to change (too long, or characters replaced)
/// ends in `-` and the first 8 hex digits of the SHA-256 of the whole original, so
/// two different originals never meet in the same shortened name (Dokku's k3s
/// scheduler failed on names past 63 characters).
public enum KubeNames {
    /// The most Kubernetes allows in a label (and a label value).
    public static let maximum = 63
    /// A CronJob's name leaves 11 characters for the Jobs it makes (`-<minutes>`).
    public static let cronJobMaximum = 52

    /// The first 8 hex digits of the SHA-256 of `text`.
    public static func hash(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    /// `raw` as a DNS-1123 label of at most `maximum` characters (`startWithLetter`:
    /// an RFC 1035 label, as Service names need).
    public static func label(_ raw: String, maximum: Int = maximum, startWithLetter: Bool = false) -> String {
        var scalars = raw.lowercased().unicodeScalars.map { isAlnum($0) ? Character($0) : "-" }
        while scalars.first == "-" { scalars.removeFirst() }
        while scalars.last == "-" { scalars.removeLast() }
        var name = String(scalars)
        if startWithLetter, let first = name.unicodeScalars.first, !("a"..."z").contains(first) { name = "x-" + name }
        if name.isEmpty { name = "x" }
        guard name != raw || name.count > maximum else { return name }
        let suffix = "-" + hash(raw)
        var head = String(name.prefix(maximum - suffix.count))
        while head.last == "-" { head.removeLast() }
        if head.isEmpty { head = "x" }
        return head + suffix
    }

    /// `raw` as a label value: at most 63 of letters, digits, '-', '_' and '.',
    /// starting and ending with a letter or digit (hash-suffixed when changed).
    public static func labelValue(_ raw: String) -> String {
        func allowed(_ s: Unicode.Scalar) -> Bool { isAlnum(s) || ("A"..."Z").contains(s) || "-_.".unicodeScalars.contains(s) }
        func edge(_ s: Unicode.Scalar) -> Bool { isAlnum(s) || ("A"..."Z").contains(s) }
        var scalars = raw.unicodeScalars.map { allowed($0) ? Character($0) : "-" }
        while let first = scalars.first, !edge(first.unicodeScalars.first!) { scalars.removeFirst() }
        while let last = scalars.last, !edge(last.unicodeScalars.first!) { scalars.removeLast() }
        let value = String(scalars)
        guard value != raw || value.count > maximum else { return value }
        let suffix = "-" + hash(raw)
        var head = String(value.prefix(maximum - suffix.count))
        while let last = head.unicodeScalars.last, !edge(last) { head.unicodeScalars.removeLast() }
        return head.isEmpty ? String(suffix.dropFirst()) : head + suffix
    }

    /// Whether `name` is a DNS-1123 label of at most `maximum` characters.
    public static func isLabel(_ name: String, maximum: Int = maximum) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard (1...maximum).contains(scalars.count), isAlnum(scalars.first!), isAlnum(scalars.last!) else { return false }
        return scalars.allSatisfy { isAlnum($0) || $0 == "-" }
    }

    /// The namespace an app's objects live in: `slipway-<app>` (one per app; see
    /// `KubernetesRenderer`).
    public static func namespace(of app: String) -> String { label("slipway-" + app) }

    private static func isAlnum(_ s: Unicode.Scalar) -> Bool { ("a"..."z").contains(s) || ("0"..."9").contains(s) }
}
