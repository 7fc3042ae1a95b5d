import Foundation
import Testing
@testable import SlipwayCore
@testable import SlipwayKubernetes

/// The sample app of issue 20's golden file, and a minimal one.
enum Samples {
    /// Two process types, two storage mounts, a domain with a certificate, a cron
    /// entry, a predeploy and a postdeploy task; a registry with credentials.
    static let shop = KubernetesAppSpec(
        tenant: "bob", app: "shop", release: 7, image: "registry.example.com/slipway/shop:7",
        processes: [
            .init(type: "web", command: "gunicorn app:app --bind 0.0.0.0:$PORT", replicas: 2,
                  resources: ResourceLimits(memoryBytes: 512 << 20, memoryReservationBytes: 256 << 20, nanoCPUs: 1_500_000_000, pids: 512),
                  checks: [HealthCheck(path: "/health", attempts: 5, timeout: 3, wait: 2, initialDelay: 1)]),
            .init(type: "worker", command: "python3 worker.py", replicas: 1, resources: ResourceLimits(memoryBytes: 256 << 20)),
        ],
        environment: ["DATABASE_URL": "postgres://shop:pw@db/shop", "PORT": "5000", "GREETING": "hello world"],
        mounts: [
            .init(source: .storage("uploads"), containerPath: "/app/uploads"),
            .init(source: .storage("reports"), containerPath: "/app/reports", readonly: true, phases: [.run]),
        ],
        domains: ["shop.example.com", "shop.apps.example.com"],
        certificate: .init(certificatePEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                           keyPEM: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", names: ["shop.example.com"]),
        cron: [CronEntry(command: "python3 report.py --daily", schedule: "0 3 * * *", concurrencyPolicy: .forbid)],
        cronTimeZone: "Europe/Berlin", predeploy: ["python3 manage.py migrate"],
        postdeploy: ["python3 manage.py warm_cache"],
        taskResources: ResourceLimits(memoryBytes: 1 << 30, nanoCPUs: 2_000_000_000), runResources: ResourceLimits(memoryBytes: 128 << 20),
        pullSecret: .init(dockerConfigJSON: #"{"auths":{"registry.example.com":{"auth":"Y2k6dG9rZW4="}}}"#))

    static let minimal = KubernetesAppSpec(tenant: "eve", app: "m", release: 1, image: "slipway/m:1",
                                           processes: [.init(type: "web", command: "", replicas: 1)], environment: ["PORT": "5000"])
}

@Suite("Kubernetes rendering")
struct RendererTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// Compares with Golden/<name>; `SLIPWAY_UPDATE_GOLDEN=1` writes it instead.
    func expectGolden(_ text: String, _ name: String) throws {
        let file = Self.goldenDirectory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["SLIPWAY_UPDATE_GOLDEN"] == "1" {
            try text.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let golden = try String(contentsOf: file, encoding: .utf8)
        #expect(text == golden, "rendering differs from \(file.path); if the change is intended, run the test with SLIPWAY_UPDATE_GOLDEN=1 and review the diff")
    }

    @Test func theSampleAppMatchesItsGoldenFile() throws {
        let objects = try KubernetesRenderer().render(Samples.shop)
        try expectGolden(objects.yamlDocuments(), "shop.yaml")
        try expectGolden(KubernetesRenderer().render(Samples.minimal).yamlDocuments(), "minimal.yaml")
    }

    @Test func theRenderingIsTheSameWhateverTheInputOrder() throws {
        var shuffled = Samples.shop
        shuffled.processes.reverse()
        shuffled.mounts.reverse()
        shuffled.domains.reverse()
        #expect(try KubernetesRenderer().render(shuffled) == KubernetesRenderer().render(Samples.shop))
        let kinds = try KubernetesRenderer().render(Samples.shop).map(\.kind)
        #expect(kinds == ["Namespace", "Secret", "Secret", "Secret", "PersistentVolumeClaim", "PersistentVolumeClaim", "Job", "Job",
                          "Service", "Deployment", "Deployment", "Ingress", "CronJob"])
    }

    @Test func everyObjectIsLabelledAndNamedWithinLimits() throws {
        var hostile = Samples.shop
        hostile.app = String(repeating: "a", count: 63)
        hostile.tenant = "x"
        hostile.processes[1].type = String(repeating: "w", count: 30)
        hostile.mounts[0].source = .storage(String(repeating: "s", count: 63))
        for spec in [Samples.shop, Samples.minimal, hostile] {
            for object in try KubernetesRenderer().render(spec) {
                #expect(KubeNames.isLabel(object.name), "\(object.kind) \(object.name)")
                #expect(object.namespace.map { KubeNames.isLabel($0) } ?? (object.kind == "Namespace"))
                #expect(object.labels[KubernetesRenderer.Label.managedBy] == "slipway")
                #expect(object.labels[KubernetesRenderer.Label.release] == String(spec.release))
                #expect(object.labels[KubernetesRenderer.Label.app] == KubeNames.labelValue(spec.app))
                #expect(object.labels.values.allSatisfy { $0.count <= 63 })
            }
        }
    }

    @Test func configGoesIntoASecretNeverInline() throws {
        let objects = try KubernetesRenderer().render(Samples.shop)
        let text = objects.map { $0.json() }.joined()
        #expect(!text.contains("postgres://shop:pw@db/shop"))
        let secret = try #require(objects.first { $0.kind == "Secret" && $0.name == "env-v7" })
        #expect(secret.body["data"]?["DATABASE_URL"]?.stringValue == Data("postgres://shop:pw@db/shop".utf8).base64EncodedString())
        let redacted = try KubernetesRenderer(redactSecrets: true).render(Samples.shop).map { $0.json() }.joined()
        #expect(!redacted.contains(Data("postgres://shop:pw@db/shop".utf8).base64EncodedString()) && !redacted.contains("MIIE"))
    }

    @Test func theRollingUpdateKeepsTheOldPodsUntilTheNewAreReady() throws {
        let web = try #require(try KubernetesRenderer().render(Samples.shop).first { $0.kind == "Deployment" && $0.name == "web" })
        #expect(web.body["spec"]?["strategy"]?["rollingUpdate"]?["maxUnavailable"] == .int(0))
        #expect(web.body["spec"]?["replicas"] == .int(2))
    }

    /// A postdeploy command is tenant code run after the switch: its Job's pod is the
    /// predeploy Job's but for the container's name and command (same securityContext,
    /// no service account token, the same claims and env Secret, no host path).
    @Test func aPostdeployJobGetsNoMoreThanThePredeployJob() throws {
        var spec = Samples.shop
        spec.postdeploy = ["curl -s http://169.254.169.254/ --unix-socket /var/run/docker.sock; cat /var/run/secrets/kubernetes.io/serviceaccount/token"]
        let objects = try KubernetesRenderer().render(spec)
        let pre = try #require(objects.first { $0.kind == "Job" && $0.name == "predeploy-1-v7" })
        let post = try #require(objects.first { $0.kind == "Job" && $0.name == "postdeploy-1-v7" })
        #expect(KubernetesRenderer.postdeployJobNames(spec) == ["postdeploy-1-v7"])
        #expect(post.labels[KubernetesRenderer.Label.task] == "postdeploy" && post.body["metadata"]?["annotations"]?[KubernetesRenderer.orderAnnotation] == "1")
        #expect(post.body["spec"]?["backoffLimit"] == .int(0))
        /// The pod without what differs by design.
        func pod(_ job: KubeObject, _ phase: String, _ command: String) throws -> String {
            let text = try #require(job.body["spec"]?["template"]?.json())
            return text.replacingOccurrences(of: "\"\(phase)\"", with: "\"TASK\"")
                .replacingOccurrences(of: KubeValue.string(command).json(), with: "\"COMMAND\"")
        }
        #expect(try pod(post, "postdeploy", spec.postdeploy[0]) == pod(pre, "predeploy", spec.predeploy[0]))
        let template = try #require(post.body["spec"]?["template"]?["spec"])
        #expect(template["automountServiceAccountToken"] == .bool(false))
        #expect(template["containers"]?.json().contains(#""allowPrivilegeEscalation":false"#) == true)
        #expect(template["serviceAccountName"] == nil && template["hostNetwork"] == nil && !template.json().contains("hostPath"))
        // A host path anywhere refuses the whole rendering, postdeploy Job included.
        spec.mounts.append(.init(source: .hostPath("/var/run"), containerPath: "/host"))
        #expect(throws: UserFacingError.self) { try KubernetesRenderer().render(spec) }
    }

    @Test func taskRunAndCronJobsGetTheLimitsTheirLocalContainersGet() throws {
        let objects = try KubernetesRenderer().render(Samples.shop)
        func containers(_ kind: String, _ name: String) throws -> String {
            let object = try #require(objects.first { $0.kind == kind && $0.name == name })
            let template = kind == "CronJob" ? object.body["spec"]?["jobTemplate"]?["spec"]?["template"] : object.body["spec"]?["template"]
            return try #require(template?["spec"]?["containers"]?.json())
        }
        // Deploy tasks: the app-level limits (resource:limit APP).
        for job in ["predeploy-1-v7", "postdeploy-1-v7"] {
            let text = try containers("Job", job)
            #expect(text.contains(#""cpu":"2000m""#) && text.contains(#""memory":"1073741824""#), "\(text)")
        }
        // run and cron: the run type's.
        #expect(try containers("CronJob", "cron-\(Samples.shop.cron[0].id)").contains(#""limits":{"memory":"134217728"}"#))
        let run = KubernetesRenderer().runJob(Samples.shop, name: "run-abc", command: ["true"])
        #expect(run.body["spec"]?["template"]?["spec"]?["containers"]?.json().contains(#""limits":{"memory":"134217728"}"#) == true)
        // No limits set: none rendered.
        var plain = Samples.minimal
        plain.predeploy = ["true"]
        #expect(try KubernetesRenderer().render(plain).allSatisfy { $0.kind != "Job" || !$0.body.json().contains("resources") })
    }

    @Test func hostPathMountsAreRefused() {
        var spec = Samples.minimal
        spec.mounts = [.init(source: .hostPath("/srv/data"), containerPath: "/app/data")]
        #expect {
            try KubernetesRenderer().render(spec)
        } throws: { error in
            (error as? UserFacingError)?.message.contains("host directory /srv/data") == true
        }
    }

    @Test func yamlQuotesEveryStringSoNothingIsReadAsAnotherType() {
        let value: KubeValue = ["on": "on", "n": "1e3", "x": "null", "multi": "a\nb: c", "q": "say \"hi\"", "empty": [], "e": [:]]
        #expect(value.yaml() == "e: {}\nempty: []\nmulti: \"a\\nb: c\"\nn: \"1e3\"\non: \"on\"\nq: \"say \\\"hi\\\"\"\nx: \"null\"\n")
    }
}
