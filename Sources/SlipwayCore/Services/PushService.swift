import Foundation

/// A push, end to end. `receive` starts it (creating the app on a first push) and
/// hands git's `receive-pack` to the front; inside it git's pre-receive hook calls
/// `preReceive`, which builds and deploys the deploy branch's new revision (the
/// release records the branch and revision when it serves), and a failure rejects
/// the push so the branch keeps its old revision; when git ends, a first push that
/// left no branch removes the app it created.
public struct PushService: Sendable {
    let apps: AppService
    let git: GitService
    let deploys: DeployService
    let users: UserService
    let authorizer: Authorizer

    /// One line of pre-receive input: `<old> <new> <ref>`.
    public struct RefUpdate: Sendable {
        public let old: String
        public let new: String
        public let ref: String

        public init?(line: String) {
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { return nil }
            (old, new, ref) = (String(parts[0]), String(parts[1]), String(parts[2]))
        }

        var isDeletion: Bool { new.allSatisfy { $0 == "0" } }
    }

    /// Who pushes, as git hands it to its pre-receive hook: in the environment git
    /// passes through, set by `receive` and by nothing a client controls.
    public struct Pusher: Sendable, Equatable {
        public let app: String
        public let userID: Int64
        public let name: String
        public let keyFingerprint: String?
        public let impersonatedBy: String?

        static let appVariable = "SLIPWAY_APP"
        static let idVariable = "SLIPWAY_PUSHER_ID"
        static let nameVariable = "SLIPWAY_PUSHER"
        static let keyVariable = "SLIPWAY_PUSHER_KEY"
        static let byVariable = "SLIPWAY_PUSHER_BY"

        init?(app: AppName, principal: Principal) {
            guard let userID = principal.userID else { return nil }
            (self.app, self.userID, name) = (app.rawValue, userID, principal.name)
            (keyFingerprint, impersonatedBy) = (principal.keyFingerprint, principal.impersonatedBy)
        }

        /// Reads the pusher from the hook's environment; throws when any part is missing.
        public init(environment env: [String: String]) throws {
            guard let app = env[Self.appVariable], let id = env[Self.idVariable].flatMap({ Int64($0) }), let name = env[Self.nameVariable] else {
                throw UserFacingError.denied("the pre-receive hook was run without the pusher's identity; nothing was deployed. It runs only inside a push over SSH (git push ssh://<host>:2222/<app>)")
            }
            (self.app, userID, self.name) = (app, id, name)
            keyFingerprint = env[Self.keyVariable]
            impersonatedBy = env[Self.byVariable]
        }

        var environment: [String: String] {
            var env = [Self.appVariable: app, Self.idVariable: String(userID), Self.nameVariable: name]
            env[Self.keyVariable] = keyFingerprint
            env[Self.byVariable] = impersonatedBy
            return env
        }
    }

    /// Starts a push of `app`: creates it when no app has the name (the caller, who
    /// passed `.appOrMissing(app, .write)`, becomes its owner), installs the hook
    /// (`hookCommand`; nil stores pushes without building) and returns git's side to
    /// spawn. When that ends, an app this push created and left without a branch or
    /// a release (the push failed, was killed or was rejected) is removed again.
    public func receive(_ app: AppName, by caller: Caller, hookCommand: [String]?, gitProtocol: String?) throws -> Spawn {
        guard let pusher = Pusher(app: app, principal: caller.principal) else {
            throw UserFacingError(.usage, "git pushes arrive over SSH from a registered user; push to ssh://<host>:2222/\(app)")
        }
        let created = try apps.find(app) == nil
        if created {
            _ = try apps.create(app, by: caller)
        } else {
            // Missing when the caller was let through, it may have been created since by someone else.
            try authorizer.require(.app(app.rawValue, .write), for: caller.principal)
        }
        let repository = try git.ensureRepository(app, hookCommand: hookCommand)
        let environment = git.environment(gitProtocol: gitProtocol, extra: pusher.environment)
        return Spawn(argv: [GitService.gitExecutable, "receive-pack", repository], environment: environment) { [deploys] _ in
            if created { try deploys.destroyIfNeverDeployed(app, by: caller) }
        }
    }

    /// Run by git's pre-receive hook: the pusher is read again (a user removed, or a
    /// key taken away, since the push started is refused, as is a pusher who lost write
    /// access), then the deploy branch's new revision is built and deployed. Throws a
    /// user-facing error to reject the push.
    public func preReceive(_ pusher: Pusher, updates: [RefUpdate], output: @escaping @Sendable (String) -> Void) throws {
        let name = try AppName(pusher.app)
        let claimed = try users.find(UserName(pusher.name)).map {
            Principal(identity: .user($0), channel: "ssh", keyFingerprint: pusher.keyFingerprint, impersonatedBy: pusher.impersonatedBy)
        }
        guard let claimed, claimed.userID == pusher.userID, let principal = try users.refreshed(claimed) else {
            throw UserFacingError.denied("the pusher \(pusher.name) is no longer a user with this key; nothing was deployed")
        }
        try authorizer.require(.app(name.rawValue, .write), for: principal)
        let caller = Caller(principal: principal, command: "git push")
        guard let app = try apps.find(name) else { throw UserFacingError.appNotFound(name.rawValue) }
        guard let branch = git.deployBranch(of: app, updatedRefs: updates.map(\.ref)),
              let update = updates.first(where: { $0.ref == "refs/heads/\(branch)" }) else {
            return  // only other branches: stored, nothing to build
        }
        guard !update.isDeletion else {
            throw UserFacingError.conflict("\(branch) is the deploy branch of \(name) and cannot be deleted")
        }
        // A locked app is refused by the deploy's own gate, with the same words.
        try deploys.deploy(name, trigger: .push(revision: update.new, branch: branch), by: caller, output: output)
    }
}
