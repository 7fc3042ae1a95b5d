import Foundation
import SlipwayCore

/// Throwaway certificates for the fake API server's TLS, made once per test process
/// with openssl in a temp directory: a cluster CA, a server certificate for 127.0.0.1
/// signed by it, a client certificate it signed (what a kubeconfig's
/// client-certificate-data holds), and a rogue CA with a client certificate of its
/// own (a wrong CA, a client certificate the cluster never issued).
public struct FakeCertificates: Sendable {
    public let caPEM: String
    public let serverPEM: String
    public let serverKeyPEM: String
    public let clientPEM: String
    public let clientKeyPEM: String
    public let rogueCAPEM: String
    public let rogueClientPEM: String
    public let rogueClientKeyPEM: String

    /// Made at first use; the directory is removed once they are read.
    public static let shared: FakeCertificates = {
        do { return try make() } catch { fatalError("cannot make the fake API server's certificates: \(error)") }
    }()

    static func make() throws -> FakeCertificates {
        let directory = NSTemporaryDirectory() + "slipway-fake-k8s-tls-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        // Each CA self-signed (openssl's v3_ca: CA:TRUE); leaves signed by it with their purpose.
        let script = """
            set -e
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > server.ext
            printf 'extendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > client.ext
            for ca in ca rogue-ca; do
              openssl req -x509 \(ec) -keyout $ca.key -out $ca.pem -days 2 -subj "/CN=fake-kubernetes-$ca"
            done
            openssl req \(ec) -keyout server.key -out server.csr -subj /CN=kube-apiserver
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req \(ec) -keyout client.key -out client.csr -subj "/O=system:masters/CN=slipway"
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext
            openssl req \(ec) -keyout rogue-client.key -out rogue-client.csr -subj "/O=system:masters/CN=slipway"
            openssl x509 -req -in rogue-client.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -out rogue-client.pem -days 2 -extfile client.ext
            """
        let made = try ProcessRunner.run("/bin/sh", ["-c", script], currentDirectory: directory)
        guard made.status == 0 else {
            throw NSError(domain: "FakeCertificates", code: Int(made.status), userInfo: [NSLocalizedDescriptionKey: made.stderr])
        }
        func read(_ name: String) throws -> String { try String(contentsOfFile: directory + "/" + name, encoding: .utf8) }
        return FakeCertificates(caPEM: try read("ca.pem"), serverPEM: try read("server.pem"), serverKeyPEM: try read("server.key"),
                                clientPEM: try read("client.pem"), clientKeyPEM: try read("client.key"), rogueCAPEM: try read("rogue-ca.pem"),
                                rogueClientPEM: try read("rogue-client.pem"), rogueClientKeyPEM: try read("rogue-client.key"))
    }
}
