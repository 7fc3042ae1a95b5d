import Foundation
import Testing
@testable import SlipwayCore

/// The SSH front's pre-auth limits as slipway.toml sets them.
@Suite("SSH admission settings")
struct SSHSettingsTests {
    @Test func parsedWhenValid() throws {
        let settings = try Settings.parse("""
            max_startups = "10:30:100"
            login_grace_time = 20
            banner_timeout = 2
            max_silent_connections = 64
            """, source: "t")
        #expect(settings.maxStartups == Settings.MaxStartups(start: 10, rate: 30, full: 100))
        #expect(settings.loginGraceTime == 20 && settings.bannerTimeout == 2 && settings.maxSilentConnections == 64)
        // One number: no early drop, everything past it refused.
        #expect(try Settings.parse("max_startups = \"5\"", source: "t").maxStartups == Settings.MaxStartups(start: 5, rate: 100, full: 5))
    }

    @Test(arguments: ["max_startups = \"0\"", "max_startups = \"10:30\"", "max_startups = \"10:0:100\"", "max_startups = \"10:101:100\"",
                      "max_startups = \"100:30:10\"", "max_startups = \"a:b:c\"", "max_startups = \"10::100\"", "max_startups = 10",
                      "login_grace_time = 0", "banner_timeout = -1", "max_silent_connections = \"many\""])
    func refusedAtLoadNamingTheKey(_ line: String) {
        let key = String(line.prefix { $0 != " " })
        #expect {
            try Settings.parse(line, source: "slipway.toml")
        } throws: { error in
            "\(error)".hasPrefix("error: config file slipway.toml: \(key) must be")
        }
    }

    @Test func randomEarlyDropRisesFromRateToAll() {
        let limit = Settings.MaxStartups(start: 10, rate: 30, full: 100)
        // Below start nothing is dropped, from full on everything, whatever the roll.
        #expect((0..<100).allSatisfy { !limit.shouldDrop(handshakes: 9, roll: $0) })
        #expect((0..<100).allSatisfy { limit.shouldDrop(handshakes: 100, roll: $0) && limit.shouldDrop(handshakes: 500, roll: $0) })
        // At start the chance is rate (30 of 100 rolls), halfway it is 65, just below full 99.
        #expect((0..<100).count { limit.shouldDrop(handshakes: 10, roll: $0) } == 30)
        #expect((0..<100).count { limit.shouldDrop(handshakes: 55, roll: $0) } == 65)
        #expect((0..<100).count { limit.shouldDrop(handshakes: 99, roll: $0) } == 99)
    }
}
