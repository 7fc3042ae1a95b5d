import Foundation
import KubernetesFakeAPI
import SlipwayCore
import Testing
@testable import SlipwayKubernetes

/// The API client against the fake server (real HTTP on loopback), and kubeconfig parsing.
@Suite("Kubernetes API client")
struct KubernetesAPIClientTests {
    @Test func kubeconfigPicksTheContextsClusterAndUserWithTokenOrCertificate() throws {
        let text = """
        apiVersion: v1
        kind: Config
        current-context: prod   # the default
        clusters:
        - name: c1
          cluster:
            server: https://10.0.0.1:6443
            certificate-authority-data: \(Data("CA PEM".utf8).base64EncodedString())
        contexts:
        - name: prod
          context:
            cluster: c1
            user: robot
        - name: certs
          context:
            cluster: c1
            user: "tls user"
        users:
        - name: robot
          user:
            token: abc.def
        - name: "tls user"
          user:
            client-certificate-data: \(Data("CERT".utf8).base64EncodedString())
            client-key-data: \(Data("KEY".utf8).base64EncodedString())
        preferences: {}
        """
        let prod = try Kubeconfig.parse(text, context: nil, directory: "/")
        #expect(prod.server == "https://10.0.0.1:6443" && prod.token == "abc.def" && prod.certificateAuthorityPEM == "CA PEM")
        let certs = try Kubeconfig.parse(text, context: "certs", directory: "/")
        #expect(certs.clientCertificatePEM == "CERT" && certs.clientKeyPEM == "KEY" && certs.token == nil)
        let missing = try #require(throws: UserFacingError.self) { try Kubeconfig.parse(text, context: "nope", directory: "/") }
        #expect(missing.message.contains("no context named \"nope\""))
    }

    @Test func apiErrorsBecomeActionableErrorLines() async throws {
        let api = try FakeKubernetesAPI.start(token: "right")
        defer { api.stop() }
        let wrong = try KubernetesAPIClient(config: Kubeconfig(server: api.url, token: "wrong"))
        let denied = await #expect(throws: UserFacingError.self) { _ = try await wrong.jobStatus(namespace: "x", name: "y") }
        #expect(denied?.message.contains("401 Unauthorized") == true && denied?.message.contains("token or client certificate") == true)

        let client = try KubernetesAPIClient(config: api.kubeconfig)
        let gone = await #expect(throws: UserFacingError.self) { _ = try await client.deploymentStatus(namespace: "x", name: "web") }
        #expect(gone?.message == "the cluster refused to read Deployment web: 404 NotFound: deployments.apps \"web\" not found")
        // A namespaced object before its namespace: 404 from the server, as a real one answers.
        let object = KubeObject(apiVersion: "v1", kind: "Secret", name: "s", namespace: "nowhere", labels: [:], members: [:])
        let early = await #expect(throws: UserFacingError.self) { try await client.apply([object], fieldManager: "slipway") }
        #expect(early?.message.contains("namespaces \"nowhere\" not found") == true)
        // An invalid name: 422 Invalid with the server's reason.
        let bad = KubeObject(apiVersion: "v1", kind: "Namespace", name: "Bad_Name", namespace: nil, labels: [:], members: [:])
        let invalid = await #expect(throws: UserFacingError.self) { try await client.apply([bad], fieldManager: "slipway") }
        #expect(invalid?.message.contains("422 Invalid") == true && invalid?.message.contains("RFC 1123") == true)
    }

    @Test func applyIsServerSideApplyAndAnotherManagersFieldNeedsForce() async throws {
        let api = try FakeKubernetesAPI.start()
        defer { api.stop() }
        let client = try KubernetesAPIClient(config: api.kubeconfig)
        let namespace = KubeObject(apiVersion: "v1", kind: "Namespace", name: "ns", namespace: nil, labels: ["slipway.dev/app": "a"], members: [:])
        func deployment(_ replicas: Int) -> KubeObject {
            KubeObject(apiVersion: "apps/v1", kind: "Deployment", name: "web", namespace: "ns", labels: ["slipway.dev/app": "a"],
                       members: ["spec": ["replicas": KubeValue(replicas)]])
        }
        try await client.apply([namespace, deployment(1)], fieldManager: "slipway")
        let path = "/apis/apps/v1/namespaces/ns/deployments/web"
        #expect(api.object(at: path)?["metadata"]?["generation"] == 1)
        api.edit(at: path, specField: "replicas", to: 5, manager: "kubectl-edit")
        // force=true (what the client always sends) takes the field back.
        try await client.apply([deployment(2)], fieldManager: "slipway")
        #expect(api.object(at: path)?["spec"]?["replicas"] == 2)
        #expect(api.object(at: path)?["metadata"]?["generation"] == 3)
        #expect(api.requests.last?.contains("fieldManager=slipway&force=true") == true)
        let listed = try await client.list(kinds: KubeKind.rendered, namespace: "ns", labelSelector: ["slipway.dev/app": "a"])
        #expect(Set(listed.map(\.name)) == ["ns", "web"])
        try await client.delete(listed.first { $0.kind.kind == "Deployment" }!)
        #expect(api.object(at: path) == nil)
    }
}
