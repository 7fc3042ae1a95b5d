import Foundation

/// An absolute, normalised path: no `..`, no `.`, no empty components, no trailing
/// slash, no control characters, and no `:` or `,` (they separate fields in the
/// engine's bind syntax, so allowing them would let a path smuggle options).
public struct AbsolutePath: Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    /// `kind` names the path in errors: "container path", "host path".
    public init(_ raw: String, kind: String) throws {
        func fail(_ why: String) -> UserFacingError {
            .invalid("invalid \(kind) \(quoted(raw)): \(why)")
        }
        guard raw.hasPrefix("/") else { throw fail("it must be absolute (start with /)") }
        guard raw.utf8.count <= 1024 else { throw fail("it is longer than 1024 bytes") }
        if raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == ":" || $0 == "," }) {
            throw fail("it may not contain control characters, ':' or ','")
        }
        var parts: [Substring] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { throw fail("'..' is not allowed") }
            if part == "." { continue }
            parts.append(part)
        }
        guard !parts.isEmpty else { throw fail("the root directory itself cannot be used") }
        rawValue = "/" + parts.joined(separator: "/")
    }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self), kind: "path")
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// When a mount is attached: `deploy` = process containers and deploy tasks,
/// `run` = `run` and cron.
public enum MountPhase: String, Sendable, Codable, CaseIterable, Comparable {
    case deploy, run

    public static func < (a: MountPhase, b: MountPhase) -> Bool { a.rawValue < b.rawValue }

    /// Parses `deploy,run`; throws a user error naming the allowed values.
    public static func parseList(_ raw: String) throws -> Set<MountPhase> {
        var phases = Set<MountPhase>()
        for item in raw.split(separator: ",", omittingEmptySubsequences: false) {
            guard let phase = MountPhase(rawValue: item.trimmingCharacters(in: .whitespaces)) else {
                throw UserFacingError.invalid("invalid phase \(quoted(String(item))): use deploy, run or deploy,run")
            }
            phases.insert(phase)
        }
        return phases
    }

    /// The stored and printed form: sorted, comma separated.
    public static func format(_ phases: Set<MountPhase>) -> String {
        phases.sorted().map(\.rawValue).joined(separator: ",")
    }
}

/// The source of a mount: a managed storage by name, or (admins only) a host directory.
public enum MountSource: Hashable, Sendable {
    case storage(StorageName)
    case hostPath(AbsolutePath)
}

/// `storage:mount`'s `<name-or-host-path>:<container-path>` argument.
public struct MountSpec: Hashable, Sendable {
    public let source: MountSource
    public let containerPath: AbsolutePath

    /// Container paths the engine mounts itself.
    static let engineOwned = ["/proc", "/dev", "/sys"]

    /// The short form, `<name-or-host-path>:<container-path>`.
    public init(_ raw: String) throws {
        guard let colon = raw.lastIndex(of: ":") else {
            throw UserFacingError.invalid("invalid mount \(quoted(raw)): write <storage-name>:<container-path>, e.g. uploads:/app/uploads, or name the entry with --container-dir /app/uploads")
        }
        try self.init(source: String(raw[..<colon]), containerPath: String(raw[raw.index(after: colon)...]))
    }

    /// Dokku's named-entry form: `<name-or-host-path> --container-dir <container-path>`.
    public init(source: String, containerPath: String) throws {
        let target = try AbsolutePath(containerPath, kind: "container path").rawValue
        // The engine owns these (kernel filesystems and devices) and refuses a mount there.
        if let reserved = Self.engineOwned.first(where: { target == $0 || target.hasPrefix($0 + "/") }) {
            throw UserFacingError.invalid("invalid container path \(quoted(target)): \(reserved) belongs to the container's kernel filesystems; mount storage elsewhere, e.g. /app/data")
        }
        self.containerPath = try AbsolutePath(target, kind: "container path")
        self.source = try MountSource(source)
    }
}

extension MountSource {
    /// A leading `/` is a host path; anything else is a storage name.
    public init(_ raw: String) throws {
        self = raw.hasPrefix("/") ? .hostPath(try AbsolutePath(raw, kind: "host path")) : .storage(try StorageName(raw))
    }
}
