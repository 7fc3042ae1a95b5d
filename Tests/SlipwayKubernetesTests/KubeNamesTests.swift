import Testing
@testable import SlipwayKubernetes

/// Names from hostile and long app, process and storage names stay valid, stable and distinct.
@Suite("Kubernetes names")
struct KubeNamesTests {
    @Test func validNamesStayAsTheyAre() {
        #expect(KubeNames.label("web") == "web")
        #expect(KubeNames.label("my-app-2") == "my-app-2")
        #expect(KubeNames.namespace(of: "shop") == "slipway-shop")
        #expect(KubeNames.labelValue("Web_1.x") == "Web_1.x")
    }

    @Test func longNamesAreCutAndHashSuffixed() {
        let app = String(repeating: "a", count: 63)
        let namespace = KubeNames.namespace(of: app)
        #expect(namespace.count == 63)
        #expect(KubeNames.isLabel(namespace))
        #expect(namespace.hasSuffix("-" + KubeNames.hash("slipway-" + app)))
        // Stable, and two names sharing a long prefix do not meet.
        #expect(KubeNames.namespace(of: app) == namespace)
        #expect(KubeNames.namespace(of: String(repeating: "a", count: 62) + "b") != namespace)
        let value = KubeNames.labelValue(String(repeating: "x", count: 100))
        #expect(value.count <= 63 && value.hasSuffix(KubeNames.hash(String(repeating: "x", count: 100))))
    }

    @Test func hostileCharactersAreReplacedAndTheNameHashed() {
        for raw in ["Web", "a_b", "a.b", "-web-", "../../etc", "web\n", "ünï", "", "---", "0day", String(repeating: "-", count: 80)] {
            let name = KubeNames.label(raw)
            #expect(KubeNames.isLabel(name), "\(raw) -> \(name)")
            let service = KubeNames.label(raw, startWithLetter: true)
            #expect(KubeNames.isLabel(service) && service.first!.isLetter, "\(raw) -> \(service)")
            let value = KubeNames.labelValue(raw)
            #expect(value.count <= 63 && value.range(of: "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", options: .regularExpression) != nil, "\(raw) -> \(value)")
        }
        // Two originals that sanitize alike stay apart.
        #expect(KubeNames.label("a_b") != KubeNames.label("a.b"))
        #expect(KubeNames.label("a_b") != "a-b")
    }

    @Test func cronJobNamesLeaveRoomForTheirJobs() {
        let name = KubeNames.label("cron-" + String(repeating: "c", count: 60), maximum: KubeNames.cronJobMaximum)
        #expect(name.count <= 52 && KubeNames.isLabel(name, maximum: 52))
    }
}
