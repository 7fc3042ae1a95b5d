import Crypto
import Foundation

/// One scheduled task from app.json `cron` (Dokku's format), checked when the
/// release is built and stored in its snapshot: entries run while that release is
/// current.
public struct CronEntry: Codable, Sendable, Equatable {
    /// What happens when a run is due while the previous one still runs.
    public enum ConcurrencyPolicy: String, Codable, Sendable, CaseIterable {
        /// Both run.
        case allow
        /// The new run is skipped (recorded as skipped).
        case forbid
        /// The old run is stopped, then the new one starts.
        case replace
    }

    /// As written in app.json; run as an argument list (`arguments`), never through a shell.
    public var command: String
    /// As written in app.json; valid (`CronSchedule`).
    public var schedule: String
    public var concurrencyPolicy: ConcurrencyPolicy
    /// Seconds before a run is stopped; nil: the server's `cron_timeout`.
    public var timeout: Int?

    enum CodingKeys: String, CodingKey { case command, schedule, concurrencyPolicy = "concurrency_policy", timeout }

    /// The keys an entry may have.
    static let keys = ["command", "schedule", "concurrency_policy", "timeout"]
    /// Bounds of the per-entry `timeout`, in seconds (a day at most).
    public static let timeoutRange = 1...86_400

    public init(command: String, schedule: String, concurrencyPolicy: ConcurrencyPolicy = .allow, timeout: Int? = nil) {
        self.command = command
        self.schedule = schedule
        self.concurrencyPolicy = concurrencyPolicy
        self.timeout = timeout
    }

    /// Stable while the schedule and command stay the same (a push that only changes
    /// something else keeps it): the first 10 hex digits of their SHA-256.
    public var id: String {
        let digest = SHA256.hash(data: Data("\(schedule)\n\(command)".utf8))
        return digest.prefix(5).map { String(format: "%02x", $0) }.joined()
    }

    /// The parsed schedule (valid: checked when the entry was read).
    public var parsedSchedule: CronSchedule {
        get throws { do { return try CronSchedule(schedule) } catch { throw UserFacingError.invalid("cron schedule \(quoted(schedule)): \(error.reason)") } }
    }

    /// The argv the container runs (the command split as a shell would split words).
    public var arguments: [String] { (try? CommandWords.split(command)) ?? [] }

    /// Reads app.json's `cron` value, refusing with the entry's index and the reason.
    static func read(_ value: JSONValue) throws -> [CronEntry] {
        guard case .list(let list) = value else {
            throw UserFacingError.invalid("app.json cron must be a list of entries, e.g. \"cron\": [{\"command\": \"bin/report\", \"schedule\": \"@daily\"}]")
        }
        guard list.count <= maximumEntries else {
            throw UserFacingError.invalid("app.json cron has \(list.count) entries; at most \(maximumEntries) are allowed")
        }
        var entries: [CronEntry] = []
        for (index, item) in list.enumerated() {
            let at = "app.json cron[\(index)]"
            guard case .object(let object) = item else {
                throw UserFacingError.invalid("\(at) must be an object with command and schedule")
            }
            if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
                throw UserFacingError.invalid("\(at): unknown key \(quoted(unknown)); an entry has \(keys.joined(separator: ", "))")
            }
            guard case .string(let command)? = object["command"] else {
                throw UserFacingError.invalid("\(at): command must be a string, e.g. \"command\": \"bin/report --daily\"")
            }
            guard case .string(let schedule)? = object["schedule"] else {
                throw UserFacingError.invalid("\(at): schedule must be a string, e.g. \"schedule\": \"*/15 * * * *\" or \"@daily\"")
            }
            let trimmed = command.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw UserFacingError.invalid("\(at): command is empty; give the command to run") }
            do {
                _ = try CommandWords.split(command)
            } catch {
                throw UserFacingError.invalid("\(at): command \(quoted(command)) \(error.reason)")
            }
            do {
                _ = try CronSchedule(schedule)
            } catch {
                throw UserFacingError.invalid("\(at): schedule \(quoted(schedule)) \(error.reason)")
            }
            var policy = ConcurrencyPolicy.allow
            if let raw = object["concurrency_policy"] {
                guard case .string(let text) = raw, let value = ConcurrencyPolicy(rawValue: text) else {
                    throw UserFacingError.invalid("\(at): concurrency_policy must be one of allow, forbid, replace")
                }
                policy = value
            }
            var timeout: Int?
            if let raw = object["timeout"] {
                guard case .integer(let seconds) = raw, timeoutRange.contains(seconds) else {
                    throw UserFacingError.invalid("\(at): timeout must be a whole number of seconds from \(timeoutRange.lowerBound) to \(timeoutRange.upperBound)")
                }
                timeout = seconds
            }
            let entry = CronEntry(command: command, schedule: schedule, concurrencyPolicy: policy, timeout: timeout)
            if let twin = entries.firstIndex(where: { $0.id == entry.id }) {
                throw UserFacingError.invalid("\(at): the same command and schedule as cron[\(twin)]; remove one")
            }
            entries.append(entry)
        }
        return entries
    }

    /// How many entries one app.json may declare.
    public static let maximumEntries = 50
}

/// Splits a command into words as a POSIX shell would (quotes and backslashes), and
/// refuses what only a shell would do: a cron command runs as an argument list, as
/// `run`'s arguments do, so `a && b`, `a | b`, `> file` or `$VAR` would reach the
/// program as literal text (Dokku #5236). Inside quotes they are just text, so
/// `sh -c 'a && b'` works.
public enum CommandWords {
    public struct Refusal: Error, Sendable { public let reason: String }

    static let howToFix = "cron commands run without a shell, as `run` runs its arguments; to use the shell, write sh -c '...'"

    public static func split(_ command: String) throws(Refusal) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var chars = Array(command)[...]
        func refuse(_ operatorText: String) -> Refusal {
            Refusal(reason: "uses the shell's \(quoted(operatorText)); \(howToFix)")
        }
        while let c = chars.popFirst() {
            switch c {
            case " ", "\t":
                if inWord { words.append(current); current = ""; inWord = false }
            case "\n", "\r":
                throw Refusal(reason: "spans more than one line; \(howToFix)")
            case "'":
                inWord = true
                guard let end = chars.firstIndex(of: "'") else { throw Refusal(reason: "has an unclosed ' quote") }
                current += String(chars[chars.startIndex..<end])
                chars = chars[chars.index(after: end)...]
            case "\"":
                inWord = true
                var closed = false
                while let d = chars.popFirst() {
                    if d == "\"" { closed = true; break }
                    if d == "$" || d == "`" { throw refuse(d == "$" ? "$" : "`") }
                    if d == "\\", let next = chars.first, "\"\\$`".contains(next) { current.append(chars.removeFirst()); continue }
                    current.append(d)
                }
                guard closed else { throw Refusal(reason: "has an unclosed \" quote") }
            case "\\":
                inWord = true
                guard let next = chars.popFirst() else { throw Refusal(reason: "ends with a lone \\") }
                current.append(next)
            case "|", "&", ";", "<", ">", "(", ")", "`", "$":
                var text = String(c)
                if let next = chars.first, ["||", "&&", ">>", "<<", "$(", ";;", "|&", "&>", "2>"].contains(text + String(next)) { text.append(next) }
                throw refuse(text)
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}

/// A JSON value as decoded, keeping whole numbers, booleans and fractions apart
/// (what app.json entries are checked against).
indirect enum JSONValue: Decodable, Sendable {
    case integer(Int)
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([JSONValue])
    case object([String: JSONValue])
    case null

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .list(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }
}
