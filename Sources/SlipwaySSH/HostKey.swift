import CLibSSH
import Foundation
import SlipwayCore

/// The server's ed25519 host key: generated on first start under
/// `<data-dir>/ssh/host_ed25519_key` (mode 0600), reused afterwards.
public final class HostKey: @unchecked Sendable {
    /// Owned libssh key; handed to the bind, which takes ownership (see `SSHServer`).
    let key: ssh_key
    public let path: String

    /// Loads the key at `<data-dir>/ssh/host_ed25519_key`, generating it if missing.
    public init(paths: DataPaths) throws {
        let dir = paths.root + "/ssh"
        path = dir + "/host_ed25519_key"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if !FileManager.default.fileExists(atPath: path) {
            try Self.generate(at: path)
        }
        var loaded: ssh_key?
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &loaded) == SSH_OK, let loaded else {
            throw SSHServerError.hostKey("cannot read the host key at \(path); move it away to generate a new one")
        }
        key = loaded
    }

    deinit { ssh_key_free(key) }

    private static func generate(at path: String) throws {
        var generated: ssh_key?
        guard ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &generated) == SSH_OK, let generated else {
            throw SSHServerError.hostKey("cannot generate an ed25519 host key")
        }
        defer { ssh_key_free(generated) }
        // Written under umask 077 and to a temporary name, so the key is never readable by others
        // and never half-written under its real name.
        let temporary = path + ".new"
        let previous = umask(0o077)
        defer { umask(previous) }
        unlink(temporary)
        guard ssh_pki_export_privkey_file(generated, nil, nil, nil, temporary) == SSH_OK, rename(temporary, path) == 0 else {
            throw SSHServerError.hostKey("cannot write the host key to \(path)")
        }
    }

    /// `ssh-ed25519 AAAA...`: for a client's known_hosts, after the host name.
    public func publicKeyLine() throws -> String {
        var pub: ssh_key?
        guard ssh_pki_export_privkey_to_pubkey(key, &pub) == SSH_OK, let pub else { throw SSHServerError.hostKey("cannot derive the public host key") }
        defer { ssh_key_free(pub) }
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(pub, &b64) == SSH_OK, let b64 else { throw SSHServerError.hostKey("cannot export the public host key") }
        defer { ssh_string_free_char(b64) }
        return "ssh-ed25519 \(String(cString: b64))"
    }

    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    public func fingerprint() throws -> String {
        try PublicKey(line: try publicKeyLine()).fingerprint
    }
}

public enum SSHServerError: Error, CustomStringConvertible {
    case hostKey(String)
    case listen(String)

    public var description: String {
        switch self {
        case .hostKey(let message), .listen(let message): message
        }
    }
}
