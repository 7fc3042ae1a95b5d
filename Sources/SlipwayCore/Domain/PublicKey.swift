import CLibSSH
import Foundation

/// An SSH public key in `authorized_keys` form, parsed and checked by libssh.
///
/// Accepted types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of at least
/// 2048 bits. `fingerprint` is exactly what `ssh-keygen -lf` prints (`SHA256:...`).
public struct PublicKey: Hashable, Sendable {
    /// The type name as written in the key line, e.g. `ssh-ed25519`.
    public let type: String
    /// The key blob in canonical base64, re-exported by libssh; the identity of the key.
    public let base64: String
    /// The free text after the blob, often `user@host`; nil when absent.
    public let comment: String?
    /// Key size in bits (RSA modulus size; 256 for ed25519; the curve size for ECDSA).
    public let bits: Int
    public let fingerprint: String

    /// The types Slipway accepts, in the order they are listed in errors.
    public static let acceptedTypes = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]
    public static let minimumRSABits = 2048
    /// A key line longer than this is refused before parsing (an RSA-16384 line is ~2.8 KB).
    public static let maximumLineBytes = 16 * 1024

    /// Parses one key line (`<type> <base64> [comment]`). Leading/trailing blank
    /// lines and `#` comment lines are ignored; exactly one key must remain.
    public init(line input: String) throws {
        let lines = input.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !lines.isEmpty else {
            throw UserFacingError.invalid("no public key given; pipe one in, e.g. ssh-keys:add bob laptop < ~/.ssh/id_ed25519.pub")
        }
        guard lines.count == 1 else {
            throw UserFacingError.invalid("\(lines.count) key lines given; add one key at a time")
        }
        let fields = lines[0].split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else {
            throw UserFacingError.invalid("malformed public key: expected \"<type> <base64> [comment]\", as in a .pub file")
        }
        let type = String(fields[0])
        guard Self.acceptedTypes.contains(type) else {
            throw UserFacingError.invalid("unsupported key type \(quoted(type)); use one of: \(Self.acceptedTypes.joined(separator: ", "))")
        }
        let parsed = try Self.parseWithLibSSH(type: type, base64: String(fields[1]))
        guard type != "ssh-rsa" || parsed.bits >= Self.minimumRSABits else {
            throw UserFacingError.invalid("RSA key of \(parsed.bits) bits is too weak; use at least \(Self.minimumRSABits) bits, or an ed25519 key (ssh-keygen -t ed25519)")
        }
        self.type = type
        self.base64 = parsed.base64
        self.bits = parsed.bits
        self.fingerprint = parsed.fingerprint
        let comment = fields.count == 3 ? String(fields[2]).trimmingCharacters(in: .whitespaces) : ""
        self.comment = comment.isEmpty ? nil : comment
    }

    /// The `authorized_keys` line, without comment.
    public var line: String { "\(type) \(base64)" }

    private static func parseWithLibSSH(type: String, base64: String) throws -> (base64: String, bits: Int, fingerprint: String) {
        let malformed = UserFacingError.invalid("malformed public key: the \(type) key data does not decode; copy the whole line from the .pub file")
        let expectedType = ssh_key_type_from_name(type)
        var key: ssh_key?
        guard ssh_pki_import_pubkey_base64(base64, expectedType, &key) == SSH_OK, let key else { throw malformed }
        defer { ssh_key_free(key) }

        // libssh maps every ecdsa curve to one family: make sure the curve matches the name.
        let actualType = ssh_key_type(key)
        if type.hasPrefix("ecdsa-") {
            guard let curve = ssh_pki_key_ecdsa_name(key), String(cString: curve) == type else { throw malformed }
        } else if actualType != expectedType {
            throw malformed
        }

        var exported: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &exported) == SSH_OK, let exported else { throw malformed }
        let canonical = String(cString: exported)
        ssh_string_free_char(exported)

        var hash: UnsafeMutablePointer<UInt8>?
        var hashLength = 0
        guard ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hashLength) == 0, let hash else { throw malformed }
        defer { var h: UnsafeMutablePointer<UInt8>? = hash; ssh_clean_pubkey_hash(&h) }
        guard let printable = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hashLength) else { throw malformed }
        let fingerprint = String(cString: printable)
        ssh_string_free_char(printable)

        let bits = try keyBits(type: type, canonicalBase64: canonical) ?? { throw malformed }()
        return (canonical, bits, fingerprint)
    }

    /// libssh 0.10 exports no key-size call, so the size comes from the blob libssh
    /// itself re-exported: for RSA the length of the modulus (the third SSH string).
    private static func keyBits(type: String, canonicalBase64: String) throws -> Int? {
        switch type {
        case "ssh-ed25519": return 256
        case "ecdsa-sha2-nistp256": return 256
        case "ecdsa-sha2-nistp384": return 384
        case "ecdsa-sha2-nistp521": return 521
        default:
            guard let blob = Data(base64Encoded: canonicalBase64) else { return nil }
            var fields: [Data] = []
            var offset = blob.startIndex
            while fields.count < 3, offset + 4 <= blob.endIndex {
                let length = blob[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
                offset += 4
                guard length <= blob.endIndex - offset else { return nil }
                fields.append(blob[offset..<offset + length])
                offset += length
            }
            guard fields.count == 3 else { return nil }
            let modulus = fields[2].drop(while: { $0 == 0 })
            guard let top = modulus.first else { return nil }
            return (modulus.count - 1) * 8 + (8 - top.leadingZeroBitCount)
        }
    }
}
