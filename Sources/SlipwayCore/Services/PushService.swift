import Foundation

/// What happens inside a push, between git receiving the objects and updating
/// the refs (git's pre-receive hook): the deploy branch's new revision is built
/// and deployed, and a failure rejects the push so the branch keeps its old revision.
public struct PushService: Sendable {
    let apps: AppService
    let git: GitService
    let deploys: DeployService

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

    /// Checks, builds and deploys; throws a user-facing error to reject the push.
    public func preReceive(app name: AppName, updates: [RefUpdate], pusher: Caller,
                           output: @escaping @Sendable (String) -> Void) throws {
        guard let app = try apps.find(name) else { throw UserFacingError.appNotFound(name.rawValue) }
        guard let branch = git.deployBranch(of: app, updatedRefs: updates.map(\.ref)),
              let update = updates.first(where: { $0.ref == "refs/heads/\(branch)" }) else {
            return  // only other branches: stored, nothing to build
        }
        guard !update.isDeletion else {
            throw UserFacingError.conflict("\(branch) is the deploy branch of \(name) and cannot be deleted")
        }
        guard !app.locked else {
            throw UserFacingError.conflict("\(name) is locked; nothing was deployed (apps:unlock \(name) allows deploys again)")
        }
        try deploys.deploy(name, trigger: .push(revision: update.new), by: pusher, output: output)
    }
}
