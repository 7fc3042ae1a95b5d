/// The boundary between "the user did something we can explain" and "we broke".
///
/// Anything thrown that is not a `UserFacingError` is reported to the user as
/// `error: internal error (ref <id>)` and logged in full for the admin.
public struct UserFacingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, from the user's side. Decides whether a failure is audited:
    /// input that never named a valid object is not.
    public enum Kind: String, Sendable {
        /// The input itself is malformed (bad name, bad key, bad path). Nothing was looked up.
        case invalidInput
        /// The command line does not parse (unknown command or flag, missing argument).
        case usage
        /// The named object does not exist, or the caller may not see it.
        case notFound
        /// The caller may see the object but lacks the access level.
        case denied
        /// The request clashes with the current state (already exists, last admin, in use).
        case conflict
        /// The command ran and reports a negative answer (`config:get` of an unset key).
        case negative
        /// Something the command needs is down (the container engine).
        case unavailable
    }

    public let kind: Kind
    /// One line (or a few) without the `error: ` prefix; names the object and the fix.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The process / ssh exit status: 2 for usage errors, 1 for everything else.
    public var exitCode: Int32 { kind == .usage ? 2 : 1 }

    public var description: String { "error: \(message)" }

    public static func invalid(_ message: String) -> UserFacingError { .init(.invalidInput, message) }
    public static func notFound(_ message: String) -> UserFacingError { .init(.notFound, message) }
    public static func denied(_ message: String) -> UserFacingError { .init(.denied, message) }
    public static func conflict(_ message: String) -> UserFacingError { .init(.conflict, message) }

    /// The single message for an app that is missing *or* that the caller may not read,
    /// so the two cannot be told apart: an app's name is not something to probe for.
    public static func appNotFound(_ name: String) -> UserFacingError {
        .notFound("app \(quoted(name)) not found; apps:list shows the apps you can use")
    }
}

/// Quotes user input for an error message: control characters escaped, long input cut,
/// so an error line can never be forged or flooded by what the user typed.
public func quoted(_ input: String, limit: Int = 80) -> String {
    var out = ""
    for scalar in input.unicodeScalars.prefix(limit) {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    if input.unicodeScalars.count > limit { out += "..." }
    return "\"\(out)\""
}
