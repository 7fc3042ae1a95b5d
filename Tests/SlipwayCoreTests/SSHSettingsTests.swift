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
            max_waiting_connections = 32
            max_sessions_per_user = 8
            """, source: "t")
        #expect(settings.maxStartups == Settings.MaxStartups(start: 10, rate: 30, full: 100))
        #expect(settings.loginGraceTime == 20 && settings.bannerTimeout == 2 && settings.maxSilentConnections == 64)
        #expect(settings.maxWaitingConnections == 32 && settings.maxSessionsPerUser == 8)
        #expect(try Settings.parse("max_startups = \"5\"", source: "t").maxStartups == Settings.MaxStartups(start: 5, rate: 100, full: 5))
    }

    /// Handshakes run at once are `start` in either form: OpenSSH's rate and full (its
    /// random early drop) are read, but past start a client waits in line instead.
    @Test func handshakePlacesAreStartInEitherForm() throws {
        #expect(try Settings.parse("max_startups = \"10:30:100\"", source: "t").maxStartups.places == 10)
        #expect(try Settings.parse("max_startups = \"7\"", source: "t").maxStartups.places == 7)
        let defaults = try Settings.parse("", source: "t")
        #expect(defaults.maxStartups.places == 128 && defaults.maxWaitingConnections == 1024 && defaults.maxSessionsPerUser == 64)
    }

    /// One user must never be able to take every session: the default stays under
    /// max_sessions, and a setting that does not is refused.
    @Test func theSessionsOfOneUserStayUnderMaxSessions() throws {
        #expect(try Settings.parse("max_sessions = 20", source: "t").maxSessionsPerUser == 10)
        #expect(try Settings.parse("max_sessions = 20\nmax_sessions_per_user = 19", source: "t").maxSessionsPerUser == 19)
        #expect {
            try Settings.parse("max_sessions = 50\nmax_sessions_per_user = 50", source: "slipway.toml")
        } throws: { error in
            "\(error)" == "error: config file slipway.toml: max_sessions_per_user (50) must be less than max_sessions (50), or one user could take every session; lower it or raise max_sessions"
        }
    }

    @Test(arguments: ["max_startups = \"0\"", "max_startups = \"10:30\"", "max_startups = \"10:0:100\"", "max_startups = \"10:101:100\"",
                      "max_startups = \"100:30:10\"", "max_startups = \"a:b:c\"", "max_startups = \"10::100\"", "max_startups = 10",
                      "login_grace_time = 0", "banner_timeout = -1", "max_silent_connections = \"many\"",
                      "max_waiting_connections = 0", "max_waiting_connections = \"all\"",
                      "max_sessions_per_user = 0", "max_sessions_per_user = \"64\""])
    func refusedAtLoadNamingTheKey(_ line: String) {
        let key = String(line.prefix { $0 != " " })
        #expect {
            try Settings.parse(line, source: "slipway.toml")
        } throws: { error in
            "\(error)".hasPrefix("error: config file slipway.toml: \(key) must be")
        }
    }
}
