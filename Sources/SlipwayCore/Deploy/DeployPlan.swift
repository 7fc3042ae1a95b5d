import Foundation

/// What a revision says about how it runs: its process types (Procfile), its
/// deploy tasks and health checks (app.json, in Dokku's format).
public struct DeployPlan: Codable, Sendable, Equatable {
    /// Process type -> shell command; an empty command runs the image's own CMD.
    public var processes: [String: String]
    /// Deploy tasks before the switch: app.json predeploy, then Procfile `release`.
    public var predeploy: [String]
    /// After the switch: app.json postdeploy.
    public var postdeploy: [String]
    /// Process type -> checks from app.json `healthchecks`.
    public var healthchecks: [String: [HealthCheck]]
    /// Process type -> quantity from app.json `formation` (Dokku's), nil when it sets
    /// no quantity. When set it is the release's scale: the types it leaves out run 0
    /// and `ps:scale` is refused while this release is current (Dokku's rule).
    public var formation: [String: Int]? = nil
    /// app.json `cron`: the tasks this release schedules while it is current; nil when
    /// it declares none (left out of its snapshot, so older snapshots read as before).
    public var cron: [CronEntry]? = nil
    /// app.json keys Slipway does not read (`env`, `buildpacks`, ...), as dotted paths, for
    /// the deploy's output; not part of a release's snapshot.
    public var ignoredKeys: [String] = []

    // `formation` is left out of snapshots that have none, so theirs read as before.
    enum CodingKeys: String, CodingKey { case processes, predeploy, postdeploy, healthchecks, formation, cron }

    public init(processes: [String: String], predeploy: [String] = [], postdeploy: [String] = [],
                healthchecks: [String: [HealthCheck]] = [:], formation: [String: Int]? = nil) {
        self.processes = processes
        self.predeploy = predeploy
        self.postdeploy = postdeploy
        self.healthchecks = healthchecks
        self.formation = formation
    }

    /// Parses a revision's Procfile and app.json (either may be absent). A Dockerfile
    /// app without a Procfile runs its image's command as `web`.
    public static func parse(procfile: String?, appJSON: String?) throws -> DeployPlan {
        var processes: [String: String] = [:]
        var release: String?
        if let procfile {
            for (number, rawLine) in procfile.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let colon = line.firstIndex(of: ":") else {
                    throw UserFacingError.invalid("Procfile line \(number + 1) is not \"type: command\": \(quoted(line))")
                }
                let type = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
                let command = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                guard ProcessType.isValid(type) else {
                    throw UserFacingError.invalid("Procfile line \(number + 1): process type \(quoted(type)) must be lowercase letters, digits and dashes, starting with a letter (at most 30)")
                }
                guard !command.isEmpty else { throw UserFacingError.invalid("Procfile line \(number + 1): \(type) has no command") }
                if type == "release" { release = command } else { processes[type] = command }
            }
        }
        if processes.isEmpty && procfile == nil { processes["web"] = "" }
        var plan = DeployPlan(processes: processes)
        if let appJSON { try plan.read(appJSON: appJSON) }
        if let release { plan.predeploy.append(release) }
        return plan
    }

    private mutating func read(appJSON text: String) throws {
        struct AppJSON: Decodable {
            struct Scripts: Decodable {
                struct Dokku: Decodable { let predeploy: String?; let postdeploy: String? }
                let dokku: Dokku?
            }
            /// Dokku's per-type entry; only `quantity` is read (max_parallel, autoscaling,
            /// service are named as ignored).
            struct ProcessFormation: Decodable { let quantity: Quantity? }
            let scripts: Scripts?
            let healthchecks: [String: [HealthCheck]]?
            let formation: [String: ProcessFormation]?
            let cron: JSONValue?
        }
        let decoded: AppJSON
        let json = Data(Self.withoutComments(text).utf8)
        do {
            decoded = try JSONDecoder().decode(AppJSON.self, from: json)
        } catch let error as UserFacingError {
            throw error
        } catch {
            throw UserFacingError.invalid("app.json is not valid: \(Self.describe(error)); see man slipway-commands, DEPLOYS")
        }
        ignoredKeys = Self.unread(in: (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] ?? [:])
        if let command = decoded.scripts?.dokku?.predeploy, !command.isEmpty { predeploy.append(command) }
        if let command = decoded.scripts?.dokku?.postdeploy, !command.isEmpty { postdeploy.append(command) }
        healthchecks = decoded.healthchecks ?? [:]
        for (type, checks) in healthchecks {
            for check in checks { try check.validate(type: type) }
        }
        try read(formation: decoded.formation?.compactMapValues { $0.quantity?.value })
        if let entries = decoded.cron {
            let read = try CronEntry.read(entries)
            cron = read.isEmpty ? nil : read
        }
    }

    /// app.json `formation.<type>.quantity`, as Dokku applies it: only when some type
    /// has a quantity; a type it names must be one the Procfile runs, except at 0
    /// (Dokku accepts scaling a type it no longer has to 0).
    private mutating func read(formation quantities: [String: Int]?) throws {
        guard let quantities, !quantities.isEmpty else { return }
        let types = processes.keys.sorted().joined(separator: ", ")
        for (type, quantity) in quantities.sorted(by: { $0.key < $1.key }) where processes[type] == nil && quantity > 0 {
            throw UserFacingError.invalid("app.json formation: there is no process type \(quoted(type)) to run \(quantity) of; the Procfile has \(types)")
        }
        formation = quantities.filter { processes[$0.key] != nil }
    }

    /// `formation.<type>.quantity`: a whole number from 0 to the server's maximum scale,
    /// refused with its path otherwise (strings, fractions, huge numbers, objects).
    struct Quantity: Decodable {
        let value: Int
        init(from decoder: Decoder) throws {
            let path = decoder.codingPath.map(\.stringValue).joined(separator: ".")
            let container = try decoder.singleValueContainer()
            guard let value = try? container.decode(Int.self), (0...ProcessType.maximumScale).contains(value) else {
                throw UserFacingError.invalid("app.json \(path) must be a whole number from 0 to \(ProcessType.maximumScale) (the most ps:scale allows), e.g. \"quantity\": 2")
            }
            self.value = value
        }
    }

    /// The keys of app.json this plan reads, as paths (`*`: any key there); any other
    /// is reported as ignored.
    private static let read: [[String]] = [["healthchecks"], ["scripts", "dokku", "predeploy"], ["scripts", "dokku", "postdeploy"],
                                           ["formation", "*", "quantity"], ["cron"]]

    private static func unread(in object: [String: Any], path: [String] = []) -> [String] {
        func matches(_ pattern: [String], _ name: [String]) -> Bool {
            zip(pattern, name).allSatisfy { $0 == "*" || $0 == $1 }
        }
        return object.keys.sorted().flatMap { key -> [String] in
            let name = path + [key]
            if read.contains(where: { $0.count == name.count && matches($0, name) }) { return [] }
            guard read.contains(where: { $0.count > name.count && matches($0, name) }) else { return [name.joined(separator: ".")] }
            return unread(in: object[key] as? [String: Any] ?? [:], path: name)
        }
    }

    /// app.json as Dokku reads it may carry `//` and `/* */` comments (Dokku's own
    /// sample app has them); they become spaces, strings left as they are.
    static func withoutComments(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        let scalars = Array(text.unicodeScalars)
        var index = 0
        var inString = false
        while index < scalars.count {
            let c = scalars[index]
            let next: Unicode.Scalar? = index + 1 < scalars.count ? scalars[index + 1] : nil
            if inString {
                out.append(c)
                if c == "\\", let next { out.append(next); index += 1 } else if c == "\"" { inString = false }
            } else if c == "/", next == "/" {
                while index < scalars.count, scalars[index] != "\n" { index += 1 }
                continue
            } else if c == "/", next == "*" {
                index += 2
                while index < scalars.count, !(scalars[index] == "*" && index + 1 < scalars.count && scalars[index + 1] == "/") {
                    if scalars[index] == "\n" { out.append("\n") }
                    index += 1
                }
                index += 2
                out.append(" ")
                continue
            } else {
                if c == "\"" { inString = true }
                out.append(c)
            }
            index += 1
        }
        return String(out)
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

/// Process type names: what `ps:scale` and container names accept.
public enum ProcessType {
    /// The most containers of one type an app may run (`ps:scale`, app.json `formation`).
    public static let maximumScale = 20

    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first), name.count <= 30 else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }
}

/// One check from app.json `healthchecks` (Dokku's fields and defaults).
public struct HealthCheck: Codable, Sendable, Equatable {
    public var type: String?
    public var name: String?
    /// An HTTP path; without one, the check is "the port accepts connections".
    public var path: String?
    /// Text the answer's body must contain.
    public var content: String?
    public var port: Int?
    public var attempts: Int?
    /// Seconds per attempt.
    public var timeout: Int?
    /// Seconds between attempts.
    public var wait: Int?
    public var initialDelay: Int?

    public init(path: String? = nil, content: String? = nil, port: Int? = nil, attempts: Int? = nil,
                timeout: Int? = nil, wait: Int? = nil, initialDelay: Int? = nil) {
        self.path = path
        self.content = content
        self.port = port
        self.attempts = attempts
        self.timeout = timeout
        self.wait = wait
        self.initialDelay = initialDelay
    }

    func validate(type: String) throws {
        if let path, !path.hasPrefix("/") || path.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw UserFacingError.invalid("app.json healthchecks.\(type): path \(quoted(path)) must start with / and hold no spaces")
        }
        for (field, value, range) in [("attempts", attempts, 1...100), ("timeout", timeout, 1...600), ("wait", wait, 0...600),
                                      ("initialDelay", initialDelay, 0...600), ("port", port, 1...65535)] {
            if let value, !range.contains(value) {
                throw UserFacingError.invalid("app.json healthchecks.\(type): \(field) must be within \(range.lowerBound)...\(range.upperBound)")
            }
        }
    }
}

/// Everything a release runs with, frozen when it is made, so a rollback or a
/// restart brings back exactly that.
public struct ReleaseSnapshot: Codable, Sendable, Equatable {
    public var plan: DeployPlan
    public var environment: [String: String]
    public var mounts: [MountSnapshot]
    public var formation: [String: Int]

    public init(plan: DeployPlan, environment: [String: String], mounts: [MountSnapshot], formation: [String: Int]) {
        self.plan = plan
        self.environment = environment
        self.mounts = mounts
        self.formation = formation
    }

    public struct MountSnapshot: Codable, Sendable, Equatable {
        public var hostDirectory: String
        public var containerPath: String
        public var readonly: Bool
        public var phases: [String]
        /// Managed storage is created and chowned to the image's user; host paths are bound as they are.
        public var managed: Bool
        /// The managed storage's id (nil in snapshots made before ids were recorded):
        /// a release only ever binds that storage, never a later one of the same name.
        public var storageId: Int64? = nil
    }
}
