import Foundation
@testable import SlipwayCore

/// A proxy that records what it is asked and keeps each app's live site in memory,
/// for core routing tests without nginx. `fail(_:_:)` makes the next apply of an
/// app fail, as nginx can: refused before it is live (`nginx -t`), or after the new
/// site is live (a reload that does not finish, with the file not put back).
final class RecordingProxy: Proxy, @unchecked Sendable {
    enum Failure { case refused, afterLive }

    let directory: String
    private let lock = NSLock()
    private var sites: [AppName: Site] = [:]
    private var failures: [AppName: Failure] = [:]
    private var log: [String] = []
    private var hook: (@Sendable () -> Void)?

    init(directory: String) { self.directory = directory }

    /// Every call so far, e.g. `apply web`, `remove web`.
    var calls: [String] { lock.withLock { log } }
    /// What the proxy serves for the app now (nil: nothing).
    func live(_ app: AppName) -> Site? { lock.withLock { sites[app] } }
    /// Runs at the start of every apply, outside the proxy's lock (as nginx's check and reload would).
    var duringApply: (@Sendable () -> Void)? {
        get { lock.withLock { hook } }
        set { lock.withLock { hook = newValue } }
    }
    /// The next apply of `app` fails this way (once).
    func fail(_ app: AppName, _ failure: Failure) { lock.withLock { failures[app] = failure } }

    func apply(_ site: Site) throws {
        duringApply?()
        try lock.withLock {
            log.append("apply \(site.app)")
            switch failures.removeValue(forKey: site.app) {
            case .refused?:
                throw UserFacingError(.conflict, "the proxy config for \(site.app) did not validate, so the live one was kept")
            case .afterLive?:
                sites[site.app] = site
                throw UserFacingError(.unavailable, "the proxy did not take the new config for \(site.app)")
            case nil:
                sites[site.app] = site
            }
        }
    }

    func remove(app: AppName) throws {
        lock.withLock {
            log.append("remove \(app)")
            sites[app] = nil
        }
    }

    func configPath(for app: AppName) -> String { "\(directory)/\(app).conf" }
    func accessLogPath(for app: AppName) -> String { "\(directory)/logs/\(app).access.log" }
}
