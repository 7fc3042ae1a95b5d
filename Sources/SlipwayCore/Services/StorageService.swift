import Foundation
import GRDB

/// Managed storage directories and the mounts that bring them (or, for admins,
/// host paths) into an app's containers.
public struct StorageService: Sendable {
    let store: Store
    let paths: DataPaths
    /// Asked which running `run` containers still bind a storage about to be destroyed.
    let containers: Containers
    /// Releases an app keeps (and may start again): their storage cannot be destroyed.
    var releasesToKeep = 5

    /// One mount as `storage:list` / `storage:report` show it.
    public struct MountInfo: Sendable {
        public let source: MountSource
        public let containerPath: String
        public let phases: Set<MountPhase>
        public let readonly: Bool
        /// The directory on the host that is bound.
        public let hostDirectory: String
        /// The storage's owner; nil for host paths and admin-created storage.
        public let owner: UserName?
        /// The storage's id; nil for host paths.
        public var storageID: Int64? = nil

        /// As a release (or a run) binds it.
        public var snapshot: ReleaseSnapshot.MountSnapshot {
            var managed = false
            if case .storage = source { managed = true }
            return ReleaseSnapshot.MountSnapshot(hostDirectory: hostDirectory, containerPath: containerPath, readonly: readonly,
                                                 phases: phases.map(\.rawValue).sorted(), managed: managed, storageId: storageID)
        }
    }

    /// A storage with the apps that mount it.
    public struct StorageInfo: Sendable {
        public let storage: Storage
        public let owner: UserName?
        public let mountedBy: [AppName]
        public let hostDirectory: String
    }

    /// The properties `storage:create` and `storage:set` manage: the directory's owner
    /// inside the containers that mount it, and its permission bits.
    public struct Properties: Sendable, Equatable {
        /// nil: the image's user of each app that mounts it (Slipway's default).
        public var chown: StorageChown?
        /// nil: the permissions are left as they are (a new directory gets 0755).
        public var mode: DirectoryMode?

        public init(chown: StorageChown? = nil, mode: DirectoryMode? = nil) {
            self.chown = chown
            self.mode = mode
        }

        /// As the row stores them (values written through `set` or `create` were validated).
        init(_ storage: Storage) {
            chown = storage.chown.flatMap { try? StorageChown($0) }
            mode = storage.mode.flatMap { try? DirectoryMode($0) }
        }

        /// " (chown 1000, mode 0770)", or "" without either: for the audit log.
        var described: String {
            let parts = [chown.map { "chown \($0.rawValue)" }, mode.map { "mode \($0.rawValue)" }].compactMap { $0 }
            return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
        }
    }

    /// Creates the storage with `properties`. Run again by its owner (or an admin) on
    /// an existing storage, it keeps the data and sets the properties anew, omitted ones
    /// cleared (Dokku's `storage:create` converges an entry the same way); `existed`
    /// says which happened.
    public func create(_ name: StorageName, properties: Properties = Properties(),
                       by caller: Caller) throws -> (storage: Storage, existed: Bool) {
        let result: (Storage, Bool) = try store.write { db in
            if var existing = try Storage.filter(Column("name") == name.rawValue).fetchOne(db) {
                guard caller.principal.isAdmin || (existing.ownerId != nil && existing.ownerId == caller.principal.userID) else {
                    throw UserFacingError.conflict("storage \(quoted(name.rawValue)) already exists; choose another name")
                }
                existing.chown = properties.chown?.rawValue
                existing.mode = properties.mode?.rawValue
                try existing.update(db)
                try db.audit(caller, app: nil, detail: "created storage \(name) again: properties set anew\(properties.described)")
                return (existing, true)
            }
            var storage = try insertStorage(name, caller, db)
            storage.chown = properties.chown?.rawValue
            storage.mode = properties.mode?.rawValue
            try storage.update(db)
            try db.audit(caller, app: nil, detail: "created storage \(name)\(properties.described)")
            return (storage, false)
        }
        try makeDirectory(name, mode: properties.mode)
        return result
    }

    /// A storage's properties and the apps that mount it (`storage:info`). The
    /// authorizer has already checked that the caller owns it or is an admin.
    public func info(_ name: StorageName) throws -> (info: StorageInfo, properties: Properties) {
        try store.read { db in
            guard let storage = try Storage.filter(Column("name") == name.rawValue).fetchOne(db) else {
                throw UserFacingError.notFound("storage \(quoted(name.rawValue)) not found; storage:create \(name) makes it")
            }
            return (try storageInfo(storage, db), Properties(storage))
        }
    }

    /// A property `storage:set` changes.
    public enum Property: String, Sendable, CaseIterable {
        case chown, mode
    }

    /// Sets (a value) or clears (nil) one property. A mode is applied to the directory
    /// at once; an owner as each app that mounts it starts next (the uid is one of that
    /// app's user namespace, so it cannot be applied before).
    public func set(_ name: StorageName, _ property: Property, to value: String?, by caller: Caller) throws -> Properties {
        let properties: Properties = try store.write { db in
            guard var storage = try Storage.filter(Column("name") == name.rawValue).fetchOne(db) else {
                throw UserFacingError.notFound("storage \(quoted(name.rawValue)) not found; storage:create \(name) makes it")
            }
            switch property {
            case .chown: storage.chown = try value.map { try StorageChown($0).rawValue }
            case .mode: storage.mode = try value.map { try DirectoryMode($0).rawValue }
            }
            try storage.update(db)
            let stored = property == .chown ? storage.chown : storage.mode
            let detail = stored.map { "set \(property.rawValue) of storage \(name) to \($0)" } ?? "cleared \(property.rawValue) of storage \(name)"
            try db.audit(caller, app: nil, detail: detail)
            return Properties(storage)
        }
        if property == .mode, let mode = properties.mode { try makeDirectory(name, mode: mode) }
        return properties
    }

    /// The current properties of the managed storage among `mounts`, by storage id:
    /// read as each container starts, so a `storage:set` applies to the next start of
    /// any release.
    public func properties(of mounts: [ReleaseSnapshot.MountSnapshot]) throws -> [Int64: Properties] {
        let ids = mounts.filter(\.managed).compactMap(\.storageId)
        guard !ids.isEmpty else { return [:] }
        return try store.read { db in
            try Storage.filter(ids.contains(Column("id"))).fetchAll(db)
                .reduce(into: [Int64: Properties]()) { $0[$1.id!] = Properties($1) }
        }
    }

    /// What `mount` did.
    public enum MountChange: Sendable {
        case created(storageToo: Bool)
        /// The same source at the same path was mounted already: its phases and mode were set anew.
        case updated
    }

    /// Mounts `spec` into the app. A storage name that does not exist yet is created,
    /// owned by the caller. Mounting the same source at the same path again updates
    /// its phases and mode in place (as Dokku's `storage:mount` does). The authorizer
    /// has already checked app write access and storage ownership (or admin for host paths).
    public func mount(_ spec: MountSpec, on appName: AppName, phases: Set<MountPhase>, readonly: Bool,
                      by caller: Caller) throws -> (info: MountInfo, change: MountChange) {
        let result: (MountInfo, MountChange) = try store.write { db in
            let app = try AppService.existing(appName, db)
            if var existing = try Mount.filter(Column("app_id") == app.id && Column("container_path") == spec.containerPath.rawValue).fetchOne(db) {
                guard try info(for: existing, db).source == spec.source else {
                    throw UserFacingError.conflict("Mount path already exists: \(appName) mounts \(describe(try info(for: existing, db).source)) at \(spec.containerPath); storage:unmount it first")
                }
                existing.phases = MountPhase.format(phases)
                existing.readonly = readonly
                try existing.update(db)
                try db.audit(caller, app: appName.rawValue,
                             detail: "updated the mount of \(describe(spec.source)) at \(spec.containerPath) (\(existing.phases)\(readonly ? ", readonly" : ""))")
                return (try info(for: existing, db), .updated)
            }
            var mount = Mount(appId: app.id!, containerPath: spec.containerPath.rawValue,
                              phases: MountPhase.format(phases), readonly: readonly, createdAt: Date())
            var created = false
            switch spec.source {
            case .storage(let name):
                var storage = try Storage.filter(Column("name") == name.rawValue).fetchOne(db)
                if storage == nil {
                    storage = try insertStorage(name, caller, db)
                    created = true
                }
                mount.storageId = storage!.id
            case .hostPath(let path):
                // As scheduler:set refuses the switch: a pod on another machine has no such directory.
                if try SchedulerService.scheduler(of: app, db) == .kubernetes {
                    throw UserFacingError.invalid("\(appName) runs on the kubernetes scheduler, which cannot mount host directories (pods run on other machines); nothing was mounted: use managed storage (storage:create, then storage:mount \(appName) NAME --container-dir \(spec.containerPath))")
                }
                mount.hostPath = path.rawValue
            }
            try mount.insert(db)
            try db.audit(caller, app: appName.rawValue,
                         detail: "mounted \(describe(spec.source)) at \(spec.containerPath) (\(mount.phases)\(readonly ? ", readonly" : ""))")
            return (try info(for: mount, db), .created(storageToo: created))
        }
        if case .storage(let name) = spec.source { try makeDirectory(name) }
        return result
    }

    /// Removes the app's mount of `source` at `containerPath`; without a path, its one
    /// mount of `source` (several: the caller must say which).
    public func unmount(_ source: MountSource, at containerPath: AbsolutePath?, from appName: AppName, by caller: Caller) throws {
        try store.write { db in
            let app = try AppService.existing(appName, db)
            var request = Mount.filter(Column("app_id") == app.id)
            if let containerPath { request = request.filter(Column("container_path") == containerPath.rawValue) }
            let mounts = try request.order(Column("container_path")).fetchAll(db).filter { try info(for: $0, db).source == source }
            guard let mount = mounts.first else {
                let at = containerPath.map { " at \($0)" } ?? ""
                throw UserFacingError.notFound("\(appName) has no mount of \(describe(source))\(at); storage:list \(appName) shows its mounts")
            }
            guard mounts.count == 1 else {
                throw UserFacingError(.usage, "\(appName) mounts \(describe(source)) at \(mounts.map(\.containerPath).joined(separator: ", ")); say which with --container-dir")
            }
            _ = try mount.delete(db)
            try db.audit(caller, app: appName.rawValue, detail: "unmounted \(describe(source)) from \(mount.containerPath) (data kept)")
        }
    }

    public func mounts(of appName: AppName) throws -> [MountInfo] {
        try store.read { db in
            let app = try AppService.existing(appName, db)
            return try Mount.filter(Column("app_id") == app.id).order(Column("container_path")).fetchAll(db).map { try info(for: $0, db) }
        }
    }

    /// Storage the principal owns (admins: all storage).
    public func storages(for principal: Principal) throws -> [StorageInfo] {
        try store.read { db in
            var request = Storage.order(Column("name"))
            if !principal.isAdmin { request = request.filter(Column("owner_id") == principal.userID) }
            return try request.fetchAll(db).map { try storageInfo($0, db) }
        }
    }

    /// `storage:list-entries`: the storages the principal owns (admins: all), with their properties.
    public func entries(for principal: Principal) throws -> [(info: StorageInfo, properties: Properties)] {
        try storages(for: principal).map { ($0, Properties($0.storage)) }
    }

    private func storageInfo(_ storage: Storage, _ db: Database) throws -> StorageInfo {
        let apps = try mounts(of: storage, db).map { $0.app }.reduce(into: [AppName]()) { if $0.last != $1 { $0.append($1) } }
        return StorageInfo(storage: storage, owner: try ownerName(storage, db), mountedBy: apps, hostDirectory: paths.storage(storage.name))
    }

    /// Deletes the storage and its data; refuses while any app mounts it, a kept
    /// release binds it, or a `run` container started before its unmount still runs.
    public func destroy(_ name: StorageName, by caller: Caller) throws {
        // Mounts first, then the engine: once no app mounts the storage no new run can
        // bind it, so the running containers found after that are all there will be.
        // (Asked the other way round, a run could start between the engine's answer
        // and an unmount.) The transaction checks the mounts again.
        if let storage = try store.read({ db in try Storage.filter(Column("name") == name.rawValue).fetchOne(db) }) {
            try refuseIfMounted(storage)
            let runs = try runs(holding: storage)
            guard runs.isEmpty else {
                throw UserFacingError.conflict("storage \(name) is still bound by running containers: \(runs.joined(separator: ", ")); stop them first (run:stop <app> <name>) or wait until they end")
            }
        }
        try store.write { db in
            guard let storage = try Storage.filter(Column("name") == name.rawValue).fetchOne(db) else {
                throw UserFacingError.notFound("storage \(quoted(name.rawValue)) not found")
            }
            try refuseIfMounted(storage, db)
            let holders = try releases(holding: storage, db)
            guard holders.isEmpty else {
                throw UserFacingError.conflict("storage \(name) is bound by releases that may start again (ps:scale, ps:restart, releases:rollback): \(holders.joined(separator: ", ")); after storage:unmount, deploy each app anew (ps:restart <app>), and destroy it once \(releasesToKeep) newer releases have replaced those")
            }
            _ = try storage.delete(db)
            try db.audit(caller, app: nil, detail: "destroyed storage \(name)")
        }
        try? FileManager.default.removeItem(atPath: paths.storage(name))
    }

    /// Refuses, before anything starts, a release whose managed storage was destroyed
    /// since it was made (its id is gone; ids never come back): binding whatever now
    /// has that name would hand the release another tenant's directory.
    public func ensurePresent(_ mounts: [ReleaseSnapshot.MountSnapshot]) throws {
        try store.read { db in
            for mount in mounts where mount.managed {
                guard let id = mount.storageId else { continue }  // made before ids were recorded
                guard let storage = try Storage.fetchOne(db, key: id), paths.storage(storage.name) == mount.hostDirectory else {
                    let name = (mount.hostDirectory as NSString).lastPathComponent
                    throw UserFacingError.conflict("this release mounts storage \(quoted(name)) at \(mount.containerPath), which was destroyed since; deploy the app anew with its current mounts (ps:restart, or storage:mount then ps:restart)")
                }
            }
        }
    }

    /// "evil v2 (serving)": the kept releases (serving, deploying, or among the last
    /// `releasesToKeep` successful ones of their app) whose snapshot binds `storage`.
    private func releases(holding storage: Storage, _ db: Database) throws -> [String] {
        let names = try AppService.names(db)
        let serving = Set(try AppService.all(db).compactMap(\.currentReleaseId))
        let rows = try Row.fetchAll(db, sql: """
            SELECT r.id, r.app_id, r.version, r.snapshot, r.status,
                   (SELECT COUNT(*) FROM releases n WHERE n.app_id = r.app_id AND n.status = 'succeeded' AND n.version > r.version) AS newer
            FROM releases r
            """).filter { row in
                let status: String = row["status"], newer: Int = row["newer"]
                return status == "deploying" || serving.contains(row["id"] as Int64) || (status == "succeeded" && newer < releasesToKeep)
            }
        let directory = paths.storage(storage.name)
        return rows.compactMap { row -> (AppName, Int, String)? in
            guard let app = names[row["app_id"] as Int64], let snapshot = try? DeployService.decode(row["snapshot"]),
                  snapshot.mounts.contains(where: { $0.managed && ($0.storageId.map { $0 == storage.id } ?? ($0.hostDirectory == directory)) })
            else { return nil }
            let id: Int64 = row["id"], version: Int = row["version"]
            return (app, version, "\(app) v\(version)\(serving.contains(id) ? " (serving)" : "")")
        }
        .sorted { ($0.0.rawValue, $0.1) < ($1.0.rawValue, $1.1) }.map { $0.2 }
    }

    /// "web.detached.1a2b3c4d": this server's containers whose label says they bind `storage`.
    private func runs(holding storage: Storage) throws -> [String] {
        let needle = ContainerLabel.storageValue([storage.id].compactMap { $0 })
        return try containers.list(app: nil, kind: nil)
            .filter { ($0.labels[ContainerLabel.storage] ?? "").contains(needle) && $0.state != "exited" }
            .map(\.name).sorted()
    }

    private func refuseIfMounted(_ storage: Storage, _ db: Database? = nil) throws {
        let users = try (db.map { try mounts(of: storage, $0) } ?? store.read { try mounts(of: storage, $0) })
            .map { "\($0.app) at \($0.containerPath)" }
        guard users.isEmpty else {
            throw UserFacingError.conflict("storage \(storage.name) is mounted by \(users.joined(separator: ", ")); storage:unmount it first")
        }
    }

    // MARK: Helpers

    private func insertStorage(_ name: StorageName, _ caller: Caller, _ db: Database) throws -> Storage {
        var storage = Storage(id: try db.freshID("storages"), name: name, ownerId: caller.principal.userID, createdAt: Date())
        try storage.insert(db)
        return storage
    }

    /// The managed directory (0755 when new), with `mode` applied when given. Its owner
    /// is set as each app that mounts it starts (`ImageUser.binds`).
    private func makeDirectory(_ name: StorageName, mode: DirectoryMode? = nil) throws {
        let directory = paths.storage(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        if let mode { try ImageUser.apply(mode, to: directory) }
    }

    /// The apps that mount `storage` and where, by app name.
    private func mounts(of storage: Storage, _ db: Database) throws -> [(app: AppName, containerPath: String)] {
        let apps = try AppService.names(db)
        return try Mount.filter(Column("storage_id") == storage.id).fetchAll(db)
            .compactMap { mount in apps[mount.appId].map { (app: $0, containerPath: mount.containerPath) } }
            .sorted { $0.app.rawValue < $1.app.rawValue }
    }

    private func ownerName(_ storage: Storage, _ db: Database) throws -> UserName? {
        guard let ownerId = storage.ownerId else { return nil }
        return try UserName.fetchOne(db, sql: "SELECT name FROM users WHERE id = ?", arguments: [ownerId])
    }

    private func info(for mount: Mount, _ db: Database) throws -> MountInfo {
        let phases = (try? MountPhase.parseList(mount.phases)) ?? Set(MountPhase.allCases)
        if let hostPath = mount.hostPath {
            return MountInfo(source: .hostPath(try AbsolutePath(hostPath, kind: "host path")), containerPath: mount.containerPath,
                             phases: phases, readonly: mount.readonly, hostDirectory: hostPath, owner: nil)
        }
        guard let storage = try Storage.fetchOne(db, key: mount.storageId) else {
            throw UserFacingError.notFound("storage of mount \(mount.containerPath) is missing")
        }
        return MountInfo(source: .storage(storage.name), containerPath: mount.containerPath, phases: phases,
                         readonly: mount.readonly, hostDirectory: paths.storage(storage.name), owner: try ownerName(storage, db),
                         storageID: storage.id)
    }

    private func describe(_ source: MountSource) -> String {
        switch source {
        case .storage(let name): "storage \(name)"
        case .hostPath(let path): "host path \(path)"
        }
    }
}
