import Foundation
import GRDB

/// The apps' bare git repositories under `<data-dir>/repos/<app>.git`, driven by
/// the real `git` binary.
public struct GitService: Sendable {
    let store: Store
    let paths: DataPaths
    let apps: AppService

    /// The git binary; found on PATH at start.
    public static let gitExecutable: String = {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/git") {
            return dir + "/git"
        }
        return "/usr/bin/git"
    }()

    /// The environment git runs with: nothing from the server's own environment
    /// except what git needs, plus the client's `GIT_PROTOCOL` when given.
    public func environment(gitProtocol: String?, extra: [String: String] = [:]) -> [String: String] {
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": paths.root, "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C.UTF-8"]
        if let gitProtocol { env["GIT_PROTOCOL"] = gitProtocol }
        return env.merging(extra) { $1 }
    }

    /// The branch a push deploys: the recorded one, else `main` when it is among the
    /// updates (or exists), else `master`.
    public func deployBranch(of app: App, updatedRefs: [String]) -> String? {
        if let branch = app.deployBranch { return branch }
        if updatedRefs.contains("refs/heads/main") { return "main" }
        let hasMain = (try? ProcessRunner.run(Self.gitExecutable, ["--git-dir", paths.repository(app.name), "rev-parse", "--verify", "-q", "refs/heads/main"],
                                              environment: environment(gitProtocol: nil)))?.status == 0
        if hasMain { return "main" }
        return updatedRefs.contains("refs/heads/master") ? "master" : nil
    }

    /// The app's bare repository, created (empty, default branch `main`) if missing,
    /// with Slipway's pre-receive hook (`hookCommand`) installed when given.
    public func ensureRepository(_ app: AppName, hookCommand: [String]? = nil) throws -> String {
        let path = try ensureBareRepository(app)
        if let hookCommand { try installHook(in: path, command: hookCommand) }
        return path
    }

    /// The pre-receive hook: it builds the pushed revision of the deploy branch, and a
    /// failed build makes git refuse the push (the branch is not updated).
    private func installHook(in repository: String, command: [String]) throws {
        let script = """
            #!/bin/sh
            # Written by slipway on every push: builds the deploy branch's new revision.
            exec \(command.map(ShellQuoting.singleQuoted).joined(separator: " "))

            """
        let hook = repository + "/hooks/pre-receive"
        if (try? String(contentsOfFile: hook, encoding: .utf8)) == script { return }
        try FileManager.default.createDirectory(atPath: repository + "/hooks", withIntermediateDirectories: true)
        let staging = hook + ".new"
        try script.write(toFile: staging, atomically: false, encoding: .utf8)
        chmod(staging, 0o755)
        guard rename(staging, hook) == 0 else { throw GitError.failed("cannot install \(hook)") }
    }

    private func ensureBareRepository(_ app: AppName) throws -> String {
        let path = paths.repository(app)
        if FileManager.default.fileExists(atPath: path + "/HEAD") { return path }
        // Built beside and moved into place, so a crash never leaves half a repo under the real name.
        let staging = "\(paths.repositories)/.\(app).git.\(UUID().uuidString)"
        let result = try ProcessRunner.run(Self.gitExecutable, ["init", "--quiet", "--bare", "--initial-branch=main", staging],
                                           environment: environment(gitProtocol: nil))
        guard result.status == 0 else {
            throw GitError.failed("git init: \(result.stderr)")
        }
        do {
            try FileManager.default.moveItem(atPath: staging, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            if !FileManager.default.fileExists(atPath: path + "/HEAD") { throw error }  // lost a race: fine if the other won
        }
        return path
    }

    /// apps:clone: a new bare repository beside the real ones holding every branch and
    /// tag of `source`'s (its objects fetched: nothing is shared with it, and no remote
    /// pointing at it is left), HEAD on `head` when given. Returns its path; the caller
    /// moves it into place (`paths.repository`) or removes it.
    func stagedCopy(of source: AppName, head: String?) throws -> String {
        let staging = "\(paths.repositories)/.clone-of-\(source).git.\(UUID().uuidString)"
        let env = environment(gitProtocol: nil)
        func git(_ args: [String]) throws {
            let result = try ProcessRunner.run(Self.gitExecutable, args, environment: env)
            guard result.status == 0 else { throw GitError.failed("git \(args.first ?? ""): \(result.stderr)") }
        }
        do {
            try git(["init", "--quiet", "--bare", "--initial-branch=main", staging])
            if FileManager.default.fileExists(atPath: paths.repository(source) + "/HEAD") {
                try git(["--git-dir", staging, "fetch", "--quiet", "--no-write-fetch-head", paths.repository(source),
                         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"])
            }
            if let head { try git(["--git-dir", staging, "symbolic-ref", "HEAD", "refs/heads/\(head)"]) }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        return staging
    }

    /// `git upload-pack` on the app's repository (a fetch or clone), for the front to spawn.
    public func uploadPack(_ app: AppName, gitProtocol: String?) throws -> Spawn {
        Spawn(argv: [Self.gitExecutable, "upload-pack", try ensureRepository(app)], environment: environment(gitProtocol: gitProtocol))
    }

    /// The commit at the tip of `branch` (`main` when nil) of the app's repository, or
    /// nil when there is no such branch (or no repository).
    public func head(of app: AppName, branch: String?) -> String? {
        let result = try? ProcessRunner.run(Self.gitExecutable, ["--git-dir", paths.repository(app), "rev-parse", "--verify", "-q",
                                                                 "refs/heads/\(branch ?? "main")^{commit}"],
                                            environment: environment(gitProtocol: nil))
        guard let result, result.status == 0 else { return nil }
        let revision = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return revision.isEmpty ? nil : revision
    }

    /// Whether the app's repository has any branch yet.
    public func hasBranches(_ app: AppName) throws -> Bool {
        let listing = try ProcessRunner.run(Self.gitExecutable, ["--git-dir", paths.repository(app), "for-each-ref", "--count=1", "refs/heads/"],
                                            environment: environment(gitProtocol: nil))
        return listing.status == 0 && !listing.stdout.isEmpty
    }
}

public enum GitError: Error, CustomStringConvertible {
    case failed(String)
    public var description: String {
        switch self { case .failed(let message): message }
    }
}
