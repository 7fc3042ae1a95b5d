/// Who owns a storage directory inside the containers that mount it: Dokku's
/// `storage:create --chown` and `storage:set NAME chown`.
///
/// Every app runs in its own user namespace (`TenantSandbox`), so a uid here is a uid
/// *inside* the container: each mounting app's start gives the directory to that uid
/// of its own range (root is the range's first uid, never the host's root). Without a
/// value Slipway gives the directory to the image's user, which is what an app needs
/// to write to it whatever its Dockerfile says.
public enum StorageChown: Sendable, Equatable {
    /// A preset name (`herokuish`, `heroku`, `paketo`, `root`) or a number: the uid and
    /// gid inside the container, and the word it was given as.
    case id(UInt32, spelled: String)
    /// `false`: never change the owner (a new directory belongs to the server, which
    /// an app's user sees as `nobody`: pair it with a mode that lets others write).
    case unchanged

    /// Dokku's presets and the uid each stands for.
    public static let presets: [(name: String, id: UInt32)] = [("herokuish", 32767), ("heroku", 1000), ("paketo", 2000), ("root", 0)]
    /// Ids 0...65535: the ones every app's user namespace maps (`IDRange.size`).
    public static let maxID: UInt32 = IDRange.size - 1

    /// Validates `herokuish|heroku|paketo|root|false|<uid>`; a uid is plain decimal
    /// digits (leading zeros dropped) up to `maxID`.
    public init(_ raw: String) throws {
        if raw == "false" { self = .unchanged; return }
        if let preset = Self.presets.first(where: { $0.name == raw }) { self = .id(preset.id, spelled: preset.name); return }
        let usage = "use herokuish (32767), heroku (1000), paketo (2000), root (0), false (leave the owner alone) or a numeric uid 0-\(Self.maxID)"
        guard !raw.isEmpty, raw.count <= 10, raw.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw UserFacingError.invalid("Unsupported chown permissions \(quoted(raw)): \(usage)")
        }
        guard let id = UInt32(raw), id <= Self.maxID else {
            throw UserFacingError.invalid("Unsupported chown permissions \(quoted(raw)): uid \(raw) is outside the ids an app's user namespace maps; \(usage)")
        }
        self = .id(id, spelled: String(id))
    }

    /// As stored and shown: the preset's name, the number, or `false`.
    public var rawValue: String {
        switch self {
        case .id(_, let spelled): spelled
        case .unchanged: "false"
        }
    }
}

/// A storage directory's permission bits: Dokku's `--mode` (3 or 4 octal digits).
/// The setuid, setgid and sticky bits are refused: on a directory that tenants'
/// containers share they change who owns what is created in it, and Slipway gives the
/// whole tree to one owner at each start anyway.
public struct DirectoryMode: Sendable, Equatable {
    public let bits: UInt16

    public init(_ raw: String) throws {
        guard (3...4).contains(raw.count), raw.allSatisfy({ ("0"..."7").contains($0) }), let bits = UInt16(raw, radix: 8) else {
            throw UserFacingError.invalid("Unsupported directory mode \(quoted(raw)). Value must be a 3 or 4 digit octal mode, such as 0755")
        }
        guard bits & 0o7000 == 0 else {
            throw UserFacingError.invalid("directory mode \(quoted(raw)) sets the setuid, setgid or sticky bit, which Slipway does not support on storage (each start gives the whole directory to one owner); use permission bits only, such as 0770")
        }
        self.bits = bits
    }

    /// `0770`: four digits, as Dokku stores it.
    public var rawValue: String {
        let digits = String(bits, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
