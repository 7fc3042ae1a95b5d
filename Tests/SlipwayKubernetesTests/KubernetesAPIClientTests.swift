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

    /// YAML that kubectl accepts but a hand-rolled subset did not: anchors and merge
    /// keys, flow (inline) maps and sequences, a folded token and a literal CA block.
    @Test func kubeconfigWithAnchorsInlineMapsAndMultiLineValues() throws {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let text = """
        apiVersion: v1
        kind: Config
        clusters: [{name: c1, cluster: {server: "https://10.0.0.2:6443", insecure-skip-tls-verify: true}}]
        base: &base
          cluster: c1
        contexts:
        - name: staging
          context:
            <<: *base
            user: robot
        - {name: other, context: {<<: *base, user: robot}}
        current-context: staging
        users:
        - name: robot
          user:
            token: >-
              abc.
              def
        - name: &tls-name tls
          user: {client-certificate-data: \(Data(ca.utf8).base64EncodedString()), client-key-data: \(Data("KEY".utf8).base64EncodedString())}
        """
        let staging = try Kubeconfig.parse(text, context: nil, directory: "/")
        #expect(staging.server == "https://10.0.0.2:6443" && staging.insecureSkipTLSVerify && staging.token == "abc. def" && staging.context == "staging")
        let other = try Kubeconfig.parse(text, context: "other", directory: "/")
        #expect(other.server == "https://10.0.0.2:6443" && other.token == "abc. def")

        // base64 wrapped over lines in a literal block, as some tools write it.
        let wrapped = Data(ca.utf8).base64EncodedString().chunked(16).joined(separator: "\n      ")
        let literal = """
        current-context: lit
        clusters:
        - name: c
          cluster:
            server: https://k8s.example:6443/
            certificate-authority-data: |
              \(wrapped)
        contexts:
        - {name: lit, context: {cluster: c, user: u}}
        users:
        - {name: u, user: {token: 't''s'}}
        """
        let lit = try Kubeconfig.parse(literal, context: nil, directory: "/")
        #expect(lit.server == "https://k8s.example:6443" && lit.certificateAuthorityPEM == ca && lit.token == "t's")

        let broken = try #require(throws: UserFacingError.self) {
            try Kubeconfig.parse("clusters:\n- name: c\n  cluster: {server: https://x\n", context: nil, directory: "/", source: "/etc/kube")
        }
        #expect(broken.message.hasPrefix("/etc/kube is not a kubeconfig this server can read (line "))
        let tabbed = try #require(throws: UserFacingError.self) { try Kubeconfig.parse("a:\n\tb: 1\n", context: nil, directory: "/") }
        #expect(tabbed.message.contains("is not a kubeconfig this server can read (line 2"))
    }

    @Test func apiErrorsBecomeActionableErrorLines() async throws {
        let api = try FakeKubernetesAPI.start(token: "right")
        defer { api.stop() }
        let wrong = try KubernetesAPIClient(config: Kubeconfig(server: api.url, certificateAuthorityPEM: api.kubeconfig.certificateAuthorityPEM, token: "wrong"))
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

private extension String {
    func chunked(_ size: Int) -> [String] {
        stride(from: 0, to: count, by: size).map { String(dropFirst($0).prefix(size)) }
    }
}
