import Foundation

/// The builder image Procfile apps are built on. Hosts without a registry (like
/// these) make it locally: debootstrap a minimal Debian with python3, import it.
public struct BuilderService: Sendable {
    let store: Store
    let paths: DataPaths
    let settings: Settings
    let engine: ContainerEngine

    /// The unprivileged user apps run as in images built on the builder.
    public static let appUser = (name: "app", uid: 1000)

    /// Procfile apps are built on the builder image's "app base": the same filesystem,
    /// configured to work in /app as `app`. Their build is then one COPY step; WORKDIR
    /// and USER steps would each cost a layer commit (~0.35 s on podman). The builder
    /// itself stays a plain root image for Dockerfiles that start FROM it.
    public static func appBase(of builder: String) -> String {
        let slash = builder.lastIndex(of: "/") ?? builder.startIndex
        if let colon = builder.lastIndex(of: ":"), colon > slash { return builder + "-app" }
        return builder + ":latest-app"
    }

    /// Makes the app base of the configured builder image when it is missing (after a
    /// bootstrap, or on an install bootstrapped before app bases existed). Returns its name.
    @discardableResult
    func ensureAppBase() throws -> String {
        let builder = settings.builderImage, base = Self.appBase(of: builder)
        let user = Self.appUser.name, instance = try paths.instanceID()
        try waitFor(timeout: Containers.callTimeout, timedOut: "making the app base \(base)") { [engine] in
            if let existing = try await engine.inspectImage(base), existing.user == user, existing.workingDirectory == "/app" { return }
            guard try await engine.inspectImage(builder) != nil else {
                throw UserFacingError(.unavailable, "the builder image \(builder) is missing; an admin can make it with builder:bootstrap")
            }
            // Created, never started: its filesystem is committed as it is.
            let spec = Containers.labelled(ContainerSpec(image: builder, command: ["/bin/sh"]), ContainerLabels(kind: .helper, instance: instance))
            let id = try await Containers.start(spec, on: engine, start: false)
            do {
                try await engine.commitContainer(id, reference: base, changes: ["WORKDIR /app", "USER \(user)", "CMD [\"/bin/sh\"]"])
            } catch {
                await Containers.removeAnyway(id, on: engine)
                throw error
            }
            try await engine.removeContainer(id, force: true)
        }
        return base
    }

    /// What `builder:report` shows.
    public struct Report: Sendable, Codable {
        public let image: String
        public let present: Bool
        public let id: String?
        public let sizeBytes: Int64?
        public let created: String?
        public let engine: String
        /// Languages the image carries for apps without a Dockerfile, and their versions.
        public var languages: [String: String] = [:]
    }

    public func report() throws -> Report {
        let image = settings.builderImage
        let info = try waitFor { [engine] in try await engine.inspectImage(image) }
        var report = Report(image: image, present: info != nil, id: info?.id, sizeBytes: info?.size, created: info?.created, engine: engine.endpoint)
        report.languages = BuilderLanguages(labels: info?.labels ?? [:]).versions
        return report
    }

    /// debootstrap (Debian bookworm, minbase, python3) into a scratch folder, add the
    /// `app` user, import as the configured builder image. `progress` gets headline lines.
    public func bootstrap(by caller: Caller, progress: @escaping @Sendable (String) -> Void) throws -> Report {
        let image = settings.builderImage
        try waitFor { [engine] in try await engine.ping() }
        guard let debootstrap = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"].first(where: FileManager.default.isExecutableFile) else {
            throw UserFacingError(.unavailable, "debootstrap is not installed on the server; install it (apt-get install debootstrap) and try again")
        }
        let scratch = paths.builds + "/bootstrap-\(UUID().uuidString)"
        let rootfs = scratch + "/rootfs", tarball = scratch + "/rootfs.tar"
        try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        defer {
            // debootstrap mounts /proc in the new root and leaves it mounted when it is
            // stopped halfway; the removal would stop at it and leave the folder behind.
            _ = try? ProcessRunner.run("/bin/umount", ["--recursive", "--lazy", rootfs + "/proc"], timeout: 30)
            try? FileManager.default.removeItem(atPath: scratch)
        }

        progress("-----> Bootstrapping Debian bookworm with python3 (venv, pip) from \(settings.builderMirror) (a minute or two)")
        let strap = try ProcessRunner.run(debootstrap, ["--variant=minbase", "--include=\(Self.debootstrapPackages.joined(separator: ","))", "bookworm", rootfs, settings.builderMirror])
        guard strap.status == 0 else {
            throw UserFacingError(.unavailable, "debootstrap failed: \(strap.stderr.split(separator: "\n").suffix(3).joined(separator: " / ")); check that \(settings.builderMirror) is reachable")
        }
        progress("-----> Adding Node.js and npm (apt-get in the new root)")
        try installWithApt(Self.aptPackages, in: rootfs)
        let languages = BuilderLanguages.fromDpkgStatus((try? String(contentsOfFile: rootfs + "/var/lib/dpkg/status", encoding: .utf8)) ?? "")
        try finishRootfs(rootfs)

        progress("-----> Importing it as \(image)")
        let tar = try ProcessRunner.run("/bin/tar", ["--numeric-owner", "-C", rootfs, "-cf", tarball, "."])
        guard tar.status == 0 else { throw UserFacingError(.unavailable, "packing the root filesystem failed: \(tar.stderr)") }
        try waitFor { [engine] in
            // The images this one replaces go too, once nothing uses them (by id: the
            // import takes the builder's name away from the old one, which would
            // otherwise stay behind nameless; one still used is left to the engine).
            let replaced = [try await engine.inspectImage(image)?.id, try await engine.inspectImage(Self.appBase(of: image))?.id].compactMap { $0 }
            try await engine.importImage(fromTarFile: tarball, reference: image,
                                         changes: ["LABEL org.slipway.builder=debian-bookworm", "LABEL \(BuilderLanguages.label)=\(languages.labelValue)"])
            try? await engine.removeImage(Self.appBase(of: image))
            let imported = try await engine.inspectImage(image)?.id
            for id in replaced where id != imported { try? await engine.removeImage(id) }
        }
        try ensureAppBase()
        try store.write { db in try db.audit(caller, app: nil, detail: "bootstrapped builder image \(image)") }
        let report = try report()
        progress("-----> Languages: \(languages.versions.keys.sorted().map { "\($0) \(languages.versions[$0]!)" }.joined(separator: ", "))")
        progress("=====> Builder image \(image) ready (\(report.sizeBytes.map { "\($0 / 1_000_000) MB" } ?? "size unknown"))")
        return report
    }

    /// What debootstrap installs (its resolver reads no `Provides`, which npm's
    /// dependencies need: those come from apt-get afterwards, `aptPackages`).
    static let debootstrapPackages = ["python3", "ca-certificates", "python3-venv", "python3-pip"]
    static let aptPackages = ["nodejs", "npm"]

    /// apt-get install inside the new root (chroot; the host's resolver for the download).
    private func installWithApt(_ packages: [String], in rootfs: String) throws {
        try? FileManager.default.removeItem(atPath: rootfs + "/etc/resolv.conf")
        try? FileManager.default.copyItem(atPath: "/etc/resolv.conf", toPath: rootfs + "/etc/resolv.conf")
        defer { try? "".write(toFile: rootfs + "/etc/resolv.conf", atomically: false, encoding: .utf8) }
        let env = ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        for args in [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + packages] {
            let result = try ProcessRunner.run("/usr/sbin/chroot", [rootfs] + args, environment: env)
            guard result.status == 0 else {
                throw UserFacingError(.unavailable, "\(args.prefix(2).joined(separator: " ")) in the builder's root failed: \((result.stdout + result.stderr).split(separator: "\n").suffix(3).joined(separator: " / ")); check that \(settings.builderMirror) is reachable")
            }
        }
    }

    /// Drops apt's caches and adds the unprivileged `app` user (uid 1000) with home /app.
    private func finishRootfs(_ rootfs: String) throws {
        for cache in ["/var/cache/apt/archives", "/var/lib/apt/lists"] {
            let dir = rootfs + cache
            for item in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where item.hasSuffix(".deb") || cache.hasSuffix("lists") {
                try? FileManager.default.removeItem(atPath: dir + "/" + item)
            }
        }
        let (name, uid) = Self.appUser
        try append("\(name):x:\(uid):\(uid):Slipway app:/app:/bin/sh\n", to: rootfs + "/etc/passwd")
        try append("\(name):x:\(uid):\n", to: rootfs + "/etc/group")
        try append("\(name):*:19000:0:99999:7:::\n", to: rootfs + "/etc/shadow")
        try FileManager.default.createDirectory(atPath: rootfs + "/app", withIntermediateDirectories: true)
        guard chown(rootfs + "/app", uid_t(uid), gid_t(uid)) == 0 else { throw UserFacingError(.unavailable, "cannot prepare /app in the builder image") }
    }

    private func append(_ line: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw UserFacingError(.unavailable, "cannot edit \(path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
    }
}
