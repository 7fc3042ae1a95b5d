import Foundation
import Testing
@testable import SlipwayCore
@testable import SlipwayKubernetes

/// Every rendered object against the official schemas of a current Kubernetes, with
/// `kubernetes-validate --strict` (PyPI; offline once installed; scripts/setup.sh
/// installs it). Missing, the test fails: it must not pass by not running.
@Suite("Rendered objects validate against Kubernetes' schemas")
struct SchemaValidationTests {
    /// A release kubernetes-validate 1.37 carries.
    static let kubernetesVersion = "1.33.0"

    /// Writes each object to its own file and runs the validator on them all.
    func validate(_ objects: [KubeObject]) throws -> (status: Int32, output: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-k8s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String] = []
        for (index, object) in objects.enumerated() {
            let file = directory.appendingPathComponent(String(format: "%02d-%@-%@.yaml", index, object.kind, object.name))
            try object.yaml().write(to: file, atomically: true, encoding: .utf8)
            files.append(file.path)
        }
        let validated = try ProcessRunner.run("/usr/bin/env", ["kubernetes-validate", "--strict", "--quiet", "-k", Self.kubernetesVersion] + files)
        let output = validated.stdout + validated.stderr
        #expect(validated.status != 127, "kubernetes-validate is not installed; run scripts/setup.sh (pip: kubernetes-validate)")
        // The schemas leave names to the API server: checked here as it does (DNS-1123 labels).
        let badNames = objects.filter { $0.name.range(of: "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", options: .regularExpression) == nil }
        if validated.status == 0, !badNames.isEmpty {
            return (1, "invalid names: " + badNames.map { "\($0.kind) \($0.name)" }.joined(separator: ", "))
        }
        return (validated.status, output)
    }

    @Test func everyObjectOfTheSampleAndTheMinimalAppIsValid() throws {
        let objects = try KubernetesRenderer().render(Samples.shop) + KubernetesRenderer().render(Samples.minimal)
        #expect(objects.count > 12)
        let result = try validate(objects)
        #expect(result.status == 0, "\(result.output)")
    }

    @Test func anInvalidObjectIsCaught() throws {
        // The validator is no rubber stamp: an uppercase name, a wrong type, an unknown field under --strict.
        let bad = KubeObject(apiVersion: "v1", kind: "Service", name: "Web", namespace: "slipway-shop", labels: [:],
                             members: ["spec": ["ports": [["port": 80]]]])
        #expect(try validate([bad]).status != 0)
        let wrongType = KubeObject(apiVersion: "apps/v1", kind: "Deployment", name: "web", namespace: "slipway-shop", labels: [:],
                                   members: ["spec": ["replicas": "two", "selector": [:], "template": [:]]])
        #expect(try validate([wrongType]).status != 0)
        let unknown = KubeObject(apiVersion: "v1", kind: "Secret", name: "env", namespace: "slipway-shop", labels: [:],
                                 members: ["type": "Opaque", "datta": [:]])
        #expect(try validate([unknown]).status != 0)
    }
}
