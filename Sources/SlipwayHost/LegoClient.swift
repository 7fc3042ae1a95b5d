import Foundation
import SlipwayCore

/// The ACME client: Debian's `lego` (what dokku-letsencrypt runs), one process per
/// order. It answers HTTP-01 on a loopback port, where nginx passes every site's
/// `/.well-known/acme-challenge/`; its account (and key, 0600) lives in
/// `request.directory` (0700) and is reused by every later order for the same server
/// and email. Each order's files are read, then deleted: the certificate's home is
/// `<data-dir>/certs/<app id>/`, written by `CertificateService`.
public struct LegoClient: ACMEClient {
    public static let defaultExecutable = "/usr/bin/lego"
    let executable: String
    /// Seconds one order may take before lego is stopped.
    let timeout: TimeInterval

    public init(executable: String = LegoClient.defaultExecutable, timeout: TimeInterval = 180) {
        self.executable = executable
        self.timeout = timeout
    }

    public func obtain(_ request: ACMERequest) throws -> ACMECertificate {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: executable) else {
            throw ACMEFailure(message: "the ACME client \(executable) is not installed; an admin installs it (apt-get install lego, or scripts/setup.sh)")
        }
        try fm.createDirectory(atPath: request.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        _ = chmod(request.directory, 0o700)
        // Only this order's files in certificates/: what is there afterwards is its.
        let issued = request.directory + "/certificates"
        try? fm.removeItem(atPath: issued)
        defer { try? fm.removeItem(atPath: issued) }
        // `--flag=value`: a value can never be read as another flag.
        var arguments = ["--server=\(request.server)", "--email=\(request.email)", "--accept-tos", "--path=\(request.directory)",
                         "--key-type=ec256", "--http", "--http.port=127.0.0.1:\(request.challengePort)", "--http-timeout=30"]
        arguments += request.names.map { "--domains=\($0)" }
        arguments.append("run")
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": request.directory]
        if let bundle = request.caBundle { environment["LEGO_CA_CERTIFICATES"] = bundle }
        // lego writes the account's key 0644 (in 0700 folders): made 0600 after every run.
        defer { Self.restrict(request.directory) }
        let result: ProcessRunner.Result
        do {
            result = try ProcessRunner.run(executable, arguments, environment: environment, timeout: timeout)
        } catch let stopped as ProcessRunner.TimedOut {
            throw ACMEFailure(message: "the ACME server did not finish within \(Int(timeout)) s: \(Self.lastLines(stopped.stdout + stopped.stderr))")
        }
        // lego logs to stderr: after anything on stdout, so the last lines are its last words.
        let output = result.stdout + result.stderr
        guard result.status == 0 else { throw Self.failure(from: output, names: request.names) }
        let files = (try? fm.contentsOfDirectory(atPath: issued)) ?? []
        guard let crt = files.first(where: { $0.hasSuffix(".crt") && !$0.hasSuffix(".issuer.crt") }),
              let chain = try? String(contentsOfFile: "\(issued)/\(crt)", encoding: .utf8),
              let key = try? String(contentsOfFile: "\(issued)/\(crt.dropLast(4)).key", encoding: .utf8) else {
            throw ACMEFailure(message: "lego reported success but wrote no certificate: \(Self.lastLines(output))")
        }
        return ACMECertificate(chainPEM: chain, keyPEM: key)
    }

    /// Every file under `directory` 0600, every folder 0700.
    static func restrict(_ directory: String) {
        let fm = FileManager.default
        for path in (fm.enumerator(atPath: directory)?.allObjects as? [String]) ?? [] {
            var isFolder: ObjCBool = false
            guard fm.fileExists(atPath: directory + "/" + path, isDirectory: &isFolder) else { continue }
            _ = chmod(directory + "/" + path, isFolder.boolValue ? 0o700 : 0o600)
        }
    }

    /// lego's error, and the names it says failed. After "one or more domains had a
    /// problem:" it writes one line per name: `[name] acme: error: ...`.
    static func failure(from output: String, names: [String]) -> ACMEFailure {
        var failed: [String: String] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("[") {
            guard let close = line.firstIndex(of: "]") else { continue }
            let name = String(line[line.index(after: line.startIndex)..<close])
            let rest = line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
            // Only lines that are errors ([INFO] lines carry names too, further in).
            guard names.contains(name), rest.hasPrefix("acme: error") || rest.hasPrefix("error") || rest.hasPrefix("invalid") else { continue }
            failed[name] = Self.shortened(rest)
        }
        let message = failed.isEmpty
            ? "the ACME server did not issue: \(lastLines(output))"
            : failed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        return ACMEFailure(message: message, failedNames: failed)
    }

    /// An error line as a user can act on it: the ACME error type and the last part of
    /// its detail, without the CA's URLs and tokens ("connection: lookup x: no such host"),
    /// at most 300 characters.
    static func shortened(_ text: String) -> String {
        var detail = text
        if let last = detail.range(of: ":: ", options: .backwards) { detail = String(detail[last.upperBound...]) }
        if let last = detail.range(of: "\": ", options: .backwards) { detail = String(detail[last.upperBound...]) }
        detail = detail.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        let marker = "urn:ietf:params:acme:error:"
        if let type = text.range(of: marker) {
            let name = text[type.upperBound...].prefix { $0.isLetter || $0.isNumber }
            if !name.isEmpty { detail = "\(name): \(detail)" }
        }
        return String(detail.prefix(300))
    }

    /// The output's last lines that are not lego's chatter, for an error message.
    static func lastLines(_ output: String) -> String {
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.contains("[INFO]") && !$0.contains("HEADS UP") }
        return String(lines.suffix(3).joined(separator: " / ").prefix(600))
    }
}
