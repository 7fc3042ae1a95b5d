import Foundation

/// Installs a Procfile app's dependencies (`DependencyPlan`) outside any Dockerfile
/// step: the engine's RUN steps run as host root without a user namespace (podman
/// 4.3's buildah), and a setup.py or an npm install script is tenant code. So the
/// install runs in an ephemeral container of the app's sandbox (its user namespace,
/// network and build limits, as `run`), from the builder's app base, with:
/// - `/app`: the app's install folder for this key, a host folder under
///   `<data-dir>/build-cache/<app id>/installs/<key>` holding the dependency files
///   (written by Slipway from git, never the repository's checkout) and the install
///   (`.venv`, `node_modules`);
/// - `/cache`: the app's download cache (`PIP_CACHE_DIR`, `npm_config_cache`);
/// - the app's config as its environment (as Dokku passes config to buildpack
///   builds), and `build_ca_certificates` as a trusted bundle, read-only.
/// Both folders are the app's only, keyed by its id, owned by its sandbox's root.
///
/// The install then becomes an image of its own, `slipway/deps-<instance>-app-<id>:<key>` (the
/// app base plus one COPY of the install, and PATH), which the app's code is copied
/// onto: a push with the same key builds only that one COPY of code, and runs no
/// container at all. For a new key npm starts from a copy of the latest install and pip
/// from a new venv (pip never removes a package dropped from requirements.txt); both
/// fetch only what is new, pip's wheels coming from the download cache. The two latest
/// installs (and their images) are kept.
struct DependencyInstaller: Sendable {
    let paths: DataPaths
    let settings: Settings
    let engine: ContainerEngine

    /// Installs kept per app (the current one and the one before, for a quick revert).
    static let installsToKeep = 2
    /// Where the download cache and the CA bundle appear in the install container.
    static let cacheMount = "/cache"
    static let caBundleMount = "/etc/slipway/build-ca-certificates.pem"

    /// The image of an app's install for `key`. Named after the server's instance as
    /// the app's network is: app ids repeat across servers sharing one engine, and one
    /// server's prune or purge must never untag another's image.
    static func imageTag(instance: String, appID: Int64, key: String) -> String { "slipway/deps-\(instance.prefix(12))-app-\(appID):\(key)" }

    /// The line a build prints when the install is reused.
    static func reuseLine(_ plan: DependencyPlan) -> String {
        "-----> Dependencies unchanged (\(plan.sources.joined(separator: ", "))): reusing the installed layer"
    }

    /// Returns the image to copy the app's code onto, installing when the key is new.
    func image(for plan: DependencyPlan, app: AppName, appID: Int64, base: String, environment: [String: String],
               limits: ResourceLimits, sandbox: TenantSandbox, scratch: String, output: @escaping @Sendable (String) -> Void) throws -> String {
        let containers = Containers(engine: engine, instance: sandbox.instance)
        let builder = settings.builderImage
        guard let builderInfo = try containers.inspectImage(builder), let baseInfo = try containers.inspectImage(base) else {
            throw UserFacingError(.unavailable, "the builder image \(builder) is missing; an admin can make it with builder:bootstrap")
        }
        try plan.check(against: BuilderLanguages(labels: builderInfo.labels), image: builder)
        let key = plan.key(baseImageID: baseInfo.id)
        let tag = Self.imageTag(instance: sandbox.instance, appID: appID, key: key)
        let installs = paths.buildCache(ofApp: appID) + "/installs", final = installs + "/" + key
        let installed = isDirectory(final)
        if installed, try containers.inspectImage(tag) != nil {
            output(Self.reuseLine(plan))
            markUsed(final)
            return tag
        }
        if installed {
            output(Self.reuseLine(plan))
        } else {
            try install(plan, into: final, app: app, appID: appID, base: base, environment: environment, limits: limits,
                        sandbox: sandbox, containers: containers, scratch: scratch, output: output)
        }
        try buildImage(tag, from: final, plan: plan, base: base, limits: limits, sandbox: sandbox, scratch: scratch, output: output)
        markUsed(final)
        prune(installs, containers: containers)
        return tag
    }

    /// Runs the install container (npm: into a copy of the latest install; pip: into a new
    /// folder, for a new venv), then moves it to `final`.
    private func install(_ plan: DependencyPlan, into final: String, app: AppName, appID: Int64, base: String, environment: [String: String],
                         limits: ResourceLimits, sandbox: TenantSandbox, containers: Containers, scratch: String,
                         output: @escaping @Sendable (String) -> Void) throws {
        let fm = FileManager.default
        let installs = (final as NSString).deletingLastPathComponent, cache = paths.buildCache(ofApp: appID) + "/cache"
        try fm.createDirectory(atPath: installs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try fm.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let work = installs + "/.tmp-" + UUID().uuidString
        defer { try? fm.removeItem(atPath: work) }
        // npm starts from the latest install: it removes what package.json no longer names.
        // pip would not: a fresh venv each time, or a package dropped from requirements.txt
        // would stay importable. Its wheels come from the app's download cache, not the index.
        let earlier = completeInstalls(installs)
        if plan.language == .node, let previous = earlier.first {
            // cp -a copies links as links: the tree is the tenant's.
            let copied = try ProcessRunner.run("/bin/cp", ["-a", "--", previous, work])
            guard copied.status == 0 else { throw UserFacingError(.unavailable, "cannot copy the previous install of \(app): \(copied.stderr)") }
            output("-----> Installing dependencies with \(plan.installer), starting from the previous install")
        } else {
            try fm.createDirectory(atPath: work, withIntermediateDirectories: false)
            output("-----> Installing dependencies with \(plan.installer)\(plan.language == .python && !earlier.isEmpty ? " into a new venv, from the app's download cache" : "")")
        }
        // The dependency files, fresh from git. Whatever the previous install left under
        // these names (a link the tenant's install made) goes first: writing never follows it.
        for name in ["requirements.txt", "package.json", "package-lock.json"] { try? fm.removeItem(atPath: work + "/" + name) }
        for (name, data) in plan.files {
            try data.write(to: URL(fileURLWithPath: work + "/" + name), options: .withoutOverwriting)
        }
        // The sandbox's root owns both folders: the container writes them, nothing else of the host.
        let root = try containers.call { engine in try await engine.userNamespaceBase(of: sandbox) }
        for folder in [work, cache] {
            let owned = try ProcessRunner.run("/bin/chown", ["-R", "-P", "-h", "\(root):\(root)", "--", folder])
            guard owned.status == 0 else { throw UserFacingError(.unavailable, "cannot give \(folder) to the app's sandbox: \(owned.stderr)") }
        }
        var env = environment
        env["HOME"] = "/tmp"
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env["PIP_CACHE_DIR"] = Self.cacheMount + "/pip"
        env["npm_config_cache"] = Self.cacheMount + "/npm"
        env.removeValue(forKey: "NPM_CONFIG_CACHE")
        var binds = ["\(work):/app", "\(cache):\(Self.cacheMount)"]
        if let bundle = try caBundle(in: scratch) {
            binds.append("\(bundle):\(Self.caBundleMount):ro")
            // npm's own `cafile` too: whether NODE_EXTRA_CA_CERTS reaches npm's requests differs
            // between versions (Debian's npm 9 honours it; npm 10 on Node 20 did not, seen on a
            // host). The bundle holds the system's CAs too, so replacing npm's list loses none.
            for name in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"] { env[name] = Self.caBundleMount }
            env.removeValue(forKey: "NPM_CONFIG_CAFILE")
        }
        var spec = ContainerSpec(image: base, command: ["/bin/sh", "-c", plan.installScript])
        spec.name = "\(app).deps.\(UUID().uuidString.prefix(8).lowercased())"
        spec.user = "0"
        spec.workingDirectory = "/app"
        spec.environment = env
        spec.binds = binds
        spec.sandbox = sandbox
        spec.limits = limits
        // Config values may be secrets (an index URL with a token): never in the stored output.
        let secrets = Set(environment.values.filter { $0.count >= 8 } + Self.secrets(in: environment).map(\.value))
            .sorted { $0.count > $1.count }  // a whole URL before the password inside it
        let tail = TailLines(count: 8)
        let lines = LineSplitter { line in
            var line = line
            for secret in secrets where line.contains(secret) { line = line.replacingOccurrences(of: secret, with: "[config value]") }
            tail.append(line)
            output("       " + line)
        }
        let ended = try containers.runToEnd(spec, labels: containers.labels(app: app, kind: .helper), timeout: Containers.taskTimeout,
                                            tooLong: UserFacingError(.conflict, "the dependency install of \(app) did not end within an hour")) { chunk in
            lines.feed(chunk.data)
        }
        lines.flush()
        guard ended.status == 0 else {
            let killed = OutOfMemory.reason(exitCode: ended.status, oomKilled: ended.details?.oomKilled ?? false, memoryLimit: limits.memoryBytes,
                                            app: app, processType: ResourceService.buildType, settings: settings)
            let last = tail.lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.suffix(3).joined(separator: " / ")
            throw UserFacingError(.conflict, "the dependency install failed: \(plan.installer) \(killed ?? "exited with status \(ended.status)")\(last.isEmpty ? "" : ": \(last)")")
        }
        try removeSecretsRecords(plan, in: work)
        try refuseLeakedSecrets(of: environment, in: work + "/" + plan.installDirectory, plan: plan, scratch: scratch)
        if isDirectory(final) { return }  // made meanwhile by another build of the same key
        guard rename(work, final) == 0 else { throw UserFacingError(.unavailable, "cannot keep the install of \(app): \(String(cString: strerror(errno)))") }
    }

    // MARK: Secrets stay out of the image

    /// The parts of an app's config the leak check looks for in an install's files: the
    /// password of a URL (`https://user:TOKEN@host/`, as written and decoded; a value may list
    /// several URLs, as PIP_EXTRA_INDEX_URL does) and the whole value of a variable named as a
    /// credential (…TOKEN…, …SECRET…, …PASSWORD…, …_AUTH…, …API_KEY…). Both of 8+ characters, as
    /// the output's masking. Other values are not secrets here: an index URL without credentials
    /// is rightly recorded by installs (npm names each tarball's address).
    static func secrets(in environment: [String: String]) -> [(name: String, value: String)] {
        var found: [(name: String, value: String)] = []
        let credentialNames = ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "_AUTH", "API_KEY", "APIKEY", "CREDENTIAL"]
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) {
            if credentialNames.contains(where: { name.uppercased().contains($0) }), value.count >= 8 { found.append((name, value)) }
            for word in value.split(whereSeparator: { $0.isWhitespace || $0 == "," }) where word.contains("://") {
                guard let url = URLComponents(string: String(word)) else { continue }
                for password in [url.percentEncodedPassword, url.password].compactMap({ $0 }) where password.count >= 8 {
                    found.append((name, password))
                }
            }
        }
        return found
    }

    /// Drops what installers write that records where each package came from, addresses
    /// and their credentials included: npm's hidden lockfile (node_modules/.package-lock.json)
    /// names each tarball's full URL, a registry URL's user:token@ too. npm only reads it to
    /// go faster and rebuilds its view from the tree without it.
    private func removeSecretsRecords(_ plan: DependencyPlan, in work: String) throws {
        guard plan.language == .node else { return }
        let hidden = work + "/node_modules/.package-lock.json"
        var info = stat()
        guard lstat(hidden, &info) == 0 else { return }
        guard unlink(hidden) == 0 else { throw UserFacingError(.unavailable, "cannot remove npm's hidden lockfile: \(String(cString: strerror(errno)))") }
    }

    /// Refuses an install whose files hold a secret of the app's config (`secrets(in:)`): they
    /// would ship in the app's image, readable by anyone who gets the image or a shell in the
    /// app. Defence in depth behind `removeSecretsRecords`: a registry that echoes credentials
    /// into package metadata, or an install script that writes its environment, is caught here.
    /// grep reads the tree without following links (-r, not -R); the patterns go through a
    /// private file, never argv (visible in the host's process list).
    private func refuseLeakedSecrets(of environment: [String: String], in folder: String, plan: DependencyPlan, scratch: String) throws {
        let secrets = Self.secrets(in: environment)
        guard !secrets.isEmpty, isDirectory(folder) else { return }
        let patterns = secrets.flatMap { $0.value.split(separator: "\n").map(String.init) }.filter { $0.count >= 8 }
        guard !patterns.isEmpty else { return }
        let patternFile = scratch + "/.secret-patterns"
        guard FileManager.default.createFile(atPath: patternFile, contents: Data(patterns.joined(separator: "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw UserFacingError(.unavailable, "cannot check the install for secrets: \(scratch) is not writable")
        }
        defer { try? FileManager.default.removeItem(atPath: patternFile) }
        let grep = try ProcessRunner.run("/bin/grep", ["-r", "-l", "-F", "-a", "-Z", "-f", patternFile, "--", folder])
        guard grep.status != 1 else { return }  // 1: no file holds any of them
        guard grep.status == 0, let first = grep.stdout.split(separator: "\0").first.map(String.init) else {
            throw UserFacingError(.unavailable, "cannot check the install for secrets: grep: \(grep.stderr)")
        }
        let contents = FileManager.default.contents(atPath: first) ?? Data()
        let name = secrets.first { secret in patterns.contains { secret.value.contains($0) && contents.range(of: Data($0.utf8)) != nil } }?.name ?? "?"
        let relative = "/app/" + first.dropFirst((folder as NSString).deletingLastPathComponent.count + 1)
        throw UserFacingError(.conflict, "the dependency install wrote the secret of config var \(name) into \(relative), which would ship in the app's image; "
            + "nothing was deployed. Give \(plan.installer) that credential in a form it does not record (a registry or index address without it, "
            + "with access granted another way), or ask the package source not to put credentials in its package metadata")
    }

    /// The app base plus the install, as its own image (one COPY, and PATH).
    private func buildImage(_ tag: String, from install: String, plan: DependencyPlan, base: String, limits: ResourceLimits,
                            sandbox: TenantSandbox, scratch: String, output: @escaping @Sendable (String) -> Void) throws {
        let folder = plan.installDirectory
        // npm makes no node_modules for a package without dependencies.
        if !isDirectory(install + "/" + folder) { try FileManager.default.createDirectory(atPath: install + "/" + folder, withIntermediateDirectories: false) }
        let context = scratch + "/deps", tarball = scratch + "/deps.tar"
        try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
        let uid = BuilderService.appUser.uid
        let path = "/app/\(folder)/\(plan.language == .python ? "bin" : ".bin"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let extra = plan.language == .python ? " VIRTUAL_ENV=/app/.venv" : ""
        try "FROM \(base)\nCOPY --chown=\(uid):\(uid) \(folder) /app/\(folder)\nENV PATH=\(path)\(extra)\n"
            .write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        let tar = try ProcessRunner.run("/bin/tar", ["--numeric-owner", "-cf", tarball, "-C", install, folder, "-C", context, "Dockerfile"])
        guard tar.status == 0 else { throw UserFacingError(.unavailable, "packing the install failed: \(tar.stderr)") }
        var request = BuildRequest(contextTarFile: tarball, tag: tag)
        request.sandbox = sandbox
        request.limits = limits
        try BuildService.runBuild(request, on: engine, output: { output("       " + $0) })
    }

    /// Keeps the latest installs (and their images); drops work folders of builds long gone.
    private func prune(_ installs: String, containers: Containers) {
        let complete = completeInstalls(installs)
        for old in complete.dropFirst(Self.installsToKeep) {
            try? FileManager.default.removeItem(atPath: old)
        }
        let stale = complete.dropFirst(Self.installsToKeep).map { (($0 as NSString).lastPathComponent) }
        if let appID = Int64(((installs as NSString).deletingLastPathComponent as NSString).lastPathComponent), !stale.isEmpty {
            let instance = containers.instance
            _ = try? containers.call { engine in for key in stale { try? await engine.removeImage(Self.imageTag(instance: instance, appID: appID, key: key)) } }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: installs)) ?? [] where name.hasPrefix(".tmp-") {
            if let modified = (try? FileManager.default.attributesOfItem(atPath: installs + "/" + name))?[.modificationDate] as? Date,
               modified < Date().addingTimeInterval(-3 * 3600) {
                try? FileManager.default.removeItem(atPath: installs + "/" + name)
            }
        }
    }

    /// Finished installs, the most recently used first.
    func completeInstalls(_ installs: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: installs)) ?? []).filter { !$0.hasPrefix(".") }
        return names.map { installs + "/" + $0 }.filter(isDirectory).map { path -> (String, Date) in
            (path, ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast)
        }.sorted { $0.1 > $1.1 }.map(\.0)
    }

    private func markUsed(_ path: String) { _ = utimes(path, nil) }

    private func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The system's CAs and `build_ca_certificates` in one file; nil when none are set.
    private func caBundle(in scratch: String) throws -> String? {
        guard !settings.buildCACertificates.isEmpty else { return nil }
        var bundle = (FileManager.default.contents(atPath: "/etc/ssl/certs/ca-certificates.crt")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        for file in settings.buildCACertificates {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw UserFacingError(.unavailable, "the build CA file \(file) (build_ca_certificates) cannot be read; an admin must fix the server's config")
            }
            bundle += "\n" + String(decoding: data, as: UTF8.self) + "\n"
        }
        let path = scratch + "/build-ca-certificates.pem"
        try bundle.write(toFile: path, atomically: true, encoding: .utf8)
        _ = chmod(path, 0o644)
        return path
    }

    // MARK: The app's cache as a whole

    /// Bytes the app's build cache holds on the host (installs and downloads).
    func size(appID: Int64) -> Int64 {
        let root = paths.buildCache(ofApp: appID)
        guard isDirectory(root), let du = try? ProcessRunner.run("/usr/bin/du", ["-s", "-B1", "-P", "--", root]), du.status == 0 else { return 0 }
        return Int64(du.stdout.split(whereSeparator: \.isWhitespace).first ?? "0") ?? 0
    }

    /// Removes the app's installs, their images and its download cache.
    func purge(appID: Int64) {
        let root = paths.buildCache(ofApp: appID)
        let keys = completeInstalls(root + "/installs").map { ($0 as NSString).lastPathComponent }
        if let instance = try? paths.instanceID() {
            _ = try? waitFor { [engine] in for key in keys { try? await engine.removeImage(Self.imageTag(instance: instance, appID: appID, key: key)) } }
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// The last lines written, for an error message.
final class TailLines: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: [String] = []
    let count: Int
    init(count: Int) { self.count = count }
    func append(_ line: String) { lock.withLock { kept.append(line); if kept.count > count { kept.removeFirst() } } }
    var lines: [String] { lock.withLock { kept } }
}
