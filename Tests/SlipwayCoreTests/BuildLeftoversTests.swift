import Foundation
import SlipwayHost
import Testing
@testable import SlipwayCore

/// What an app's builds leave unused (`BuildService.removeLeftovers`), on the fake engine:
/// the newest four of that app's stay, the rest go, another app's are untouched, and
/// none stays with a destroyed app.
@Suite("Step images builds leave")
struct BuildLeftoversTests {
    @Test func theNewestFourOfTheAppsOwnStayAndNoneWithTheApp() throws {
        let engine = FakeEngine()
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        let core = try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"), processes: LocalProcesses())
        let instance = try core.paths.instanceID()
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        // Listed out of date order, as an engine may.
        engine.dangling["\(instance):1"] = [3, 0, 5, 1, 4, 2].map { DanglingImage(id: "mine-\($0)", created: start.addingTimeInterval(Double($0))) }
        engine.dangling["\(instance):2"] = [DanglingImage(id: "other-0", created: start)]

        core.builds.removeLeftovers(appID: 1)
        #expect(Set(engine.dangling["\(instance):1"]!.map(\.id)) == ["mine-2", "mine-3", "mine-4", "mine-5"])
        #expect(engine.calls.filter { $0.hasPrefix("rmi ") }.sorted() == ["rmi mine-0", "rmi mine-1"])
        #expect(engine.dangling["\(instance):2"]!.map(\.id) == ["other-0"])

        // The app destroyed: none of its own stays.
        let app = try AppName("web")
        _ = try core.apps.create(app, by: Caller(principal: .localAdmin, command: "test"))
        #expect(try core.apps.find(app)?.id == 1)
        _ = try core.deploys.destroy(app, purgeStorage: false, by: Caller(principal: .localAdmin, command: "test"))
        #expect(engine.dangling["\(instance):1"]! == [])
        #expect(engine.dangling["\(instance):2"]!.map(\.id) == ["other-0"])
    }
}
