import Foundation
import KubernetesFakeAPI
import SlipwayCore
import Testing
@testable import SlipwayKubernetes

/// The real client against the fake API server over TLS (throwaway CA, server and
/// client certificates from openssl), configured from kubeconfig YAML as a file holds
/// it: the server's certificate checked against certificate-authority-data, a bearer
/// token or client-certificate-data/client-key-data, and clear errors when either fails.
@Suite("Kubernetes API over TLS")
struct KubernetesTLSTests {
    let namespaces = KubeKind.rendered[0]

    func client(_ yaml: String) throws -> KubernetesAPIClient {
        try KubernetesAPIClient(config: try Kubeconfig.parse(yaml, context: nil, directory: "/"), requestTimeout: .seconds(5))
    }

    func namespace(_ name: String) -> KubeObject {
        KubeObject(apiVersion: "v1", kind: "Namespace", name: name, namespace: nil, labels: ["slipway.dev/app": "tls"], members: [:])
    }

    /// The error a call ends with.
    func refusal(_ call: () async throws -> Void) async -> String {
        do { try await call(); return "no error" } catch let error as UserFacingError { return error.message } catch { return "not a UserFacingError: \(error)" }
    }

    @Test func certificateAuthorityDataAndATokenWork() async throws {
        let api = try FakeKubernetesAPI.start(token: "s3cret")
        defer { api.stop() }
        #expect(api.url.hasPrefix("https://127.0.0.1:"))
        let yaml = api.kubeconfigYAML
        #expect(yaml.contains("certificate-authority-data: ") && yaml.contains("token: s3cret"))
        let client = try client(yaml)
        try await client.apply([namespace("slipway-tls")], fieldManager: "slipway")
        #expect(try await client.list(kinds: [namespaces], namespace: nil, labelSelector: ["slipway.dev/app": "tls"]).map(\.name) == ["slipway-tls"])
        // A wrong token over the same TLS is the API's 401.
        let wrong = await refusal { try await self.client(yaml.replacingOccurrences(of: "token: s3cret", with: "token: guess")).apply([self.namespace("x")], fieldManager: "slipway") }
        #expect(wrong.contains("401 Unauthorized") && wrong.contains("token or client certificate is not accepted"), "\(wrong)")
    }

    @Test func clientCertificateDataAndKeyDataWork() async throws {
        let api = try FakeKubernetesAPI.start(.init(clientCertificates: true))
        defer { api.stop() }
        let yaml = api.kubeconfigYAML
        #expect(yaml.contains("client-certificate-data: ") && yaml.contains("client-key-data: ") && !yaml.contains("token:"))
        let client = try client(yaml)
        try await client.apply([namespace("slipway-tls")], fieldManager: "slipway")
        #expect(api.object(at: "/api/v1/namespaces/slipway-tls") != nil)
    }

    @Test func aServerCertificateTheKubeconfigsCADidNotSignIsRefused() async throws {
        let api = try FakeKubernetesAPI.start(token: "s3cret")
        defer { api.stop() }
        let certificates = FakeCertificates.shared
        let rogue = api.kubeconfigYAML.replacingOccurrences(of: Data(certificates.caPEM.utf8).base64EncodedString(),
                                                             with: Data(certificates.rogueCAPEM.utf8).base64EncodedString())
        let message = await refusal { try await self.client(rogue).apply([self.namespace("x")], fieldManager: "slipway") }
        #expect(message.hasPrefix("cannot reach the Kubernetes API at \(api.url)"), "\(message)")
        #expect(message.contains("the TLS handshake failed: its certificate is not signed by the kubeconfig's certificate-authority"), "\(message)")
        #expect(api.requests.isEmpty)
    }

    @Test func aMissingOrForeignClientCertificateIsRefused() async throws {
        let api = try FakeKubernetesAPI.start(.init(clientCertificates: true))
        defer { api.stop() }
        let certificates = FakeCertificates.shared
        let yaml = api.kubeconfigYAML
        // None at all: the handshake passes (as kube-apiserver's), the request is anonymous: 401.
        let none = try KubernetesAPIClient(config: Kubeconfig(server: api.url, certificateAuthorityPEM: certificates.caPEM), requestTimeout: .seconds(5))
        let anonymous = await refusal { try await none.apply([self.namespace("x")], fieldManager: "slipway") }
        #expect(anonymous.contains("401 Unauthorized") && anonymous.contains("token or client certificate is not accepted"), "\(anonymous)")
        // One the cluster's CA never signed: the handshake fails.
        let foreign = yaml
            .replacingOccurrences(of: Data(certificates.clientPEM.utf8).base64EncodedString(), with: Data(certificates.rogueClientPEM.utf8).base64EncodedString())
            .replacingOccurrences(of: Data(certificates.clientKeyPEM.utf8).base64EncodedString(), with: Data(certificates.rogueClientKeyPEM.utf8).base64EncodedString())
        let before = api.requests.count
        let message = await refusal { try await self.client(foreign).apply([self.namespace("x")], fieldManager: "slipway") }
        #expect(message.hasPrefix("cannot reach the Kubernetes API at \(api.url)"), "\(message)")
        #expect(message.contains("the TLS handshake failed: it refused the kubeconfig's client certificate"), "\(message)")
        #expect(api.requests.count == before)
        #expect(api.object(at: "/api/v1/namespaces/x") == nil)
    }
}
