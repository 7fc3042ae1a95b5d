import Foundation
import GRDB

/// `--image` (create, upgrade) and `<kind>:upgrade`.
extension DatastoreService {
    // MARK: Which images a service may run

    /// The image `create` or `upgrade` may run for a tenant, or an `error:` saying why not.
    ///
    /// - A plain reference (`name[:tag]`, an optional registry host): no option-like
    ///   strings, paths, whitespace, digests or image ids (an id or digest can name any
    ///   image on the server, an app's too).
    /// - Nothing under Slipway's own `slipway/` names but this kind's service image
    ///   (and the admin's `postgres_image`): those are other tenants' app and dependency
    ///   images, with their code and whatever their builds left in them.
    /// - On this server already (no registry is asked); the default image is built when missing.
    func checkedImage(_ kind: DatastoreKind, _ image: String, progress: @escaping @Sendable (String) -> Void) throws -> String {
        let example = "name an image on this server, e.g. \(Self.defaultImage(kind))"
        let reference = #"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"#
        guard image.utf8.count <= 255, image.range(of: reference, options: .regularExpression) != nil, !image.contains(".."),
              !image.hasPrefix("sha256:"), image.range(of: "^[0-9a-f]{12,64}$", options: .regularExpression) == nil else {
            throw UserFacingError.invalid("invalid image \(quoted(image)): \(example) (name[:tag]; no ids, digests or paths)")
        }
        let allowed = Set([Self.defaultImage(kind)] + (kind == .postgres ? [settings.postgresImage].compactMap { $0 } : []))
        func isSlipways(_ name: String) -> Bool {
            var parts = name.split(separator: "/").map(String.init)
            // A registry host (localhost, a dotted name, a port) is not part of the name.
            if parts.count > 1, let first = parts.first, first == "localhost" || first.contains(".") || first.contains(":") { parts.removeFirst() }
            return parts.first == "slipway"
        }
        func plain(_ name: String) -> String {
            for prefix in ["localhost/", "docker.io/library/", "docker.io/"] where name.hasPrefix(prefix) { return String(name.dropFirst(prefix.count)) }
            return name
        }
        let refused = UserFacingError.invalid("image \(quoted(image)) is one of Slipway's own images (apps', builds'); a service runs \(Self.defaultImage(kind)) or an image an admin loaded")
        guard !isSlipways(image) || allowed.contains(plain(image)) else { throw refused }
        try ensureImage(kind, image, progress: progress)
        // The name may resolve to an image that is also tagged as an app's.
        if let info = try containers.inspectImage(image), info.tags.contains(where: { isSlipways($0) && !allowed.contains(plain($0)) }) {
            throw refused
        }
        return image
    }

    // MARK: Upgrade

    /// What `upgrade` did.
    public struct Upgrade: Sendable {
        public let from: String
        public let to: String
        /// The backup made first (listed by `backups`, restorable).
        public let backup: DatastoreBackup
        public let version: String
    }

    /// Runs the service on `image`: a backup first (as `backup`, audited), then the
    /// container made again on the new image with the same data directory, password,
    /// name and networks (each linked app's, under the same alias, so their URL stays).
    /// If the new image does not start or answer (as `create` waits for it), the old
    /// image runs again and the error says so; the row keeps the old image.
    public func upgrade(_ kind: DatastoreKind, _ name: DatastoreName, image: String, by caller: Caller,
                        progress: @escaping @Sendable (String) -> Void) throws -> Upgrade {
        let image = try checkedImage(kind, image, progress: progress)
        let service = try store.read { db in try Self.existing(kind, name, db) }
        guard image != service.image else {
            throw UserFacingError.conflict("\(kind.namespace) service \(name) already runs \(image)")
        }
        _ = try containerID(kind, name)
        progress("-----> Backing up \(name) first")
        let backup = try self.backup(kind, name, by: caller)
        progress("       \(backup.id) (\(backup.bytes) bytes); \(kind.namespace):restore \(name) \(backup.id) brings it back")
        progress("-----> Starting \(name) on \(image)")
        var upgraded = service
        upgraded.image = image
        try removeContainer(service)
        do {
            try start(upgraded)
        } catch {
            let why = (error as? UserFacingError)?.message ?? "\(error)"
            try? removeContainer(upgraded)
            var back = "back on \(service.image)"
            // A new image that crash-loops under restart=always can leave podman's
            // network state behind for a moment (seen: "network already exists" on the
            // first try), so the old image gets a few tries.
            var lastError: Error?
            for attempt in 0..<3 {
                if attempt > 0 { Thread.sleep(forTimeInterval: 2); try? removeContainer(service) }
                do { try start(service); lastError = nil; break } catch { lastError = error }
            }
            if let lastError { back = "and \(service.image) did not start again either (\(lastError)); \(kind.namespace):restart \(name) retries it" }
            _ = try? store.write { db in
                try db.audit(caller, app: nil, outcome: "failed", detail: "upgrade of \(kind.namespace) service \(name) to \(image) failed (\(why)); \(back)")
            }
            throw UserFacingError(.unavailable, "\(kind.namespace) service \(name) did not start on \(image) (\(why)); \(back), its data as before (backup \(backup.id))")
        }
        try store.write { db in
            try db.execute(sql: "UPDATE services SET image = ?, state = 'running' WHERE id = ?", arguments: [image, service.id])
            try db.audit(caller, app: nil, detail: "upgraded \(kind.namespace) service \(name) from \(service.image) to \(image) (backup \(backup.id) first)")
        }
        let version = (try? containers.inspectImage(image))??.labels[Self.versionLabel] ?? "unknown"
        return Upgrade(from: service.image, to: image, backup: backup, version: version)
    }
}
