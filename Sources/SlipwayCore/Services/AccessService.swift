import Foundation

/// A change of who may use an app, and what ends with it: `run` and `run:detached`
/// need write access, so a user whose access falls below it loses their runs
/// (`acl:add` with a lower role, `acl:remove`, `users:remove`).
public struct AccessService: Sendable {
    let apps: AppService
    let users: UserService
    let runs: RunService

    /// The runs that went when a user's access ended.
    public struct EndedRuns: Sendable {
        /// Whose access ended.
        public let user: UserName
        /// The containers stopped.
        public let stopped: [String]
        /// Why the runs could not be stopped. The access change is committed by then,
        /// so an engine that cannot be reached is reported, not an error.
        public let failure: String?
    }

    /// Grants `role` on the app; a role below write ends the user's runs in it (nil: none end).
    public func grant(_ role: AppRole, on app: AppName, to user: UserName, by caller: Caller) throws -> EndedRuns? {
        try apps.grant(role, on: app, to: user, by: caller)
        return role < .write ? stopRuns(of: user, in: app, by: caller) : nil
    }

    /// Takes the user's access to the app away, and their runs in it.
    public func revoke(on app: AppName, from user: UserName, by caller: Caller) throws -> EndedRuns {
        try apps.revoke(on: app, from: user, by: caller)
        return stopRuns(of: user, in: app, by: caller)
    }

    /// Removes the user with their keys and app access, and their runs in every app.
    public func removeUser(_ user: UserName, by caller: Caller) throws -> EndedRuns {
        try users.remove(user, by: caller)
        return stopRuns(of: user, in: nil, by: caller)
    }

    private func stopRuns(of user: UserName, in app: AppName?, by caller: Caller) -> EndedRuns {
        do {
            return EndedRuns(user: user, stopped: try runs.stopRuns(startedBy: user.rawValue, in: app, by: caller), failure: nil)
        } catch {
            return EndedRuns(user: user, stopped: [], failure: (error as? UserFacingError)?.message ?? "\(error)")
        }
    }
}
