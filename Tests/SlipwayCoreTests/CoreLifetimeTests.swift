import Foundation
import SlipwayHost
import Testing
@testable import SlipwayCore

/// A Core goes with its last reference, and its database with it: no service keeps them
/// through a hook that points back at its own owner.
@Suite("Core lifetime")
struct CoreLifetimeTests {
    @Test func aCoreAndItsDatabaseAreFreedWithItsLastReference() throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        weak var core: Core?
        weak var store: Store?
        weak var hook: ClusterRoutingHook?
        try {
            let made = try Core(settings: settings, engine: FakeEngine(), probe: FakeProbe(),
                                proxy: RecordingProxy(directory: settings.dataDir + "/proxy"), processes: LocalProcesses())
            _ = try made.apps.create(try AppName("web"), by: Caller(principal: .localAdmin, command: "test"))
            (core, store, hook) = (made, made.store, made.routing.cluster)
        }()
        #expect(core == nil, "the Core outlived its last reference")
        #expect(store == nil, "the Core's database outlived it")
        #expect(hook == nil, "the routing service's cluster hook outlived the Core")
    }
}
