import ArgumentParser
import Foundation
import SlipwayCore

/// `storage:*`: persistent directories that survive deploys, tasks and `run`.
enum StorageCommands {
    struct Create: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:create",
            abstract: "Create a managed storage directory that you own (again: set its --chown and --mode anew).",
            discussion: "--chown herokuish|heroku|paketo|root|false|<uid>: the directory's owner inside the containers that mount it, "
                + "given to that uid of each app's user namespace as the app starts (default: the image's user; false: never changed). "
                + "--mode 0770: its permission bits (3 or 4 octal digits; no setuid, setgid or sticky bit). "
                + "A host path is not an entry here: admins mount one directly (storage:mount <app> /host/dir:/path).")
        static let rule = AccessRule.user
        @Argument(help: "Lowercase letters, digits and '-'.") var name: String
        @Argument(help: "Refused: Slipway's storage lives under its data directory; admins mount host paths directly.") var path: String?
        @Option(help: "herokuish, heroku, paketo, root, false, or a uid 0-65535 (inside the container).") var chown: String?
        @Option(help: "The directory's permission bits, e.g. 0770.") var mode: String?
        @Option(help: "docker-local (the only one Slipway has).") var scheduler: String?
        @Option(help: "Delete (what storage:destroy does here); Retain is refused.") var reclaimPolicy: String?
        @OptionGroup var kubernetes: KubernetesOptions
        // A host path would name a host directory: only admins may even try.
        var requirement: Requirement { path == nil ? .user : .admin }

        func execute(in context: CommandContext) throws {
            let storage = try StorageName(name)
            if let path {
                throw UserFacingError.invalid("storage:create takes no host path (\(quoted(path))): Slipway keeps storage under its data directory and never changes a host directory's owner or mode; mount the host path directly: storage:mount <app> \(path):/container/path")
            }
            try StorageCommands.refuse(scheduler: scheduler, reclaimPolicy: reclaimPolicy, kubernetes)
            let properties = StorageService.Properties(chown: try chown.map(StorageChown.init), mode: try mode.map(DirectoryMode.init))
            let result = try context.core.storage.create(storage, properties: properties, by: context.caller)
            context.print("-----> Storage entry \(storage) \(result.existed ? "already exists, leaving in place; its properties were set anew" : "created")")
            if let mode = properties.mode { context.print("       Setting directory mode to \(mode.rawValue)") }
            if let chown = properties.chown { context.print("       " + StorageCommands.ownerNote(chown)) }
            context.note("       mount it with: storage:mount <app> \(storage) --container-dir /app/<dir>")
        }
    }

    /// Dokku's k3s options: refused, saying why.
    struct KubernetesOptions: ParsableArguments {
        @Option(help: .hidden) var size: String?
        @Option(help: .hidden) var accessMode: String?
        @Option(help: .hidden) var storageClassName: String?
        @Option(help: .hidden) var namespace: String?
    }

    static func refuse(scheduler: String?, reclaimPolicy: String?, _ kubernetes: KubernetesOptions) throws {
        if let scheduler, scheduler != "docker-local" {
            throw UserFacingError.invalid("scheduler \(quoted(scheduler)) is not supported: Slipway runs containers on this host only (docker-local); leave --scheduler out")
        }
        if let reclaimPolicy, reclaimPolicy != "Delete" {
            throw UserFacingError.invalid("reclaim policy \(quoted(reclaimPolicy)) is not supported: storage:destroy always deletes the directory and its data here (Delete); keep the data by keeping the storage")
        }
        let given = [("--size", kubernetes.size), ("--access-mode", kubernetes.accessMode),
                     ("--storage-class-name", kubernetes.storageClassName), ("--namespace", kubernetes.namespace)].filter { $0.1 != nil }
        if let first = given.first {
            throw UserFacingError.invalid("\(first.0) is a k3s option (a PersistentVolumeClaim's); Slipway's storage is a directory on this host; leave it out")
        }
    }

    /// What an owner setting does, in one line.
    static func ownerNote(_ chown: StorageChown) -> String {
        switch chown {
        case .unchanged: "The directory's owner is left as it is (an app sees it owned by nobody; give others write access with --mode if it must write)"
        case .id(let id, _): "Directory owner inside the containers: \(id):\(id), set as each app that mounts it starts"
        }
    }

    struct Mount: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:mount",
            abstract: "Mount storage into an app: storage:mount <app> <storage>:<container-path>, or <app> <storage> --container-dir <path>.",
            discussion: "A storage that does not exist yet is created for you. Mounting the same storage at the same path again updates its phases and mode. Host paths (/host/dir:/path) are for admins only. Phases: deploy = processes and deploy tasks, run = run and cron; default both.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        @Argument(help: ArgumentHelp("<storage>:<container-path>, or <storage> with --container-dir", valueName: "mount")) var mount: String
        @Option(help: "The path inside the container (Dokku's named-entry form).") var containerDir: String?
        @Option(help: "deploy, run, or deploy,run (default).") var phase: String = "deploy,run"
        @Flag(help: "Mount read-only.") var readonly = false
        @Flag(help: "Mount read-only (Dokku's spelling of --readonly).") var volumeReadonly = false
        @Option(help: "ro or rw (Dokku's bind options; others are refused).") var volumeOptions: String?
        @Option(help: "Refused: a mount applies to every process type of the app.") var processType: String?

        var requirement: Requirement {
            // A host path is a way out of the tenant's lane: admins only. Anything
            // else needs ownership of the app and of the storage: a writer's own
            // storage would stay a path into the app after their access ends.
            let source = StorageCommands.source(of: mount, containerDir: containerDir)
            if source.hasPrefix("/") { return .all([.app(app, .write), .admin]) }
            return .all([.app(app, .owner), .storageOwner(source, allowMissing: true)])
        }

        func execute(in context: CommandContext) throws {
            let appName = try AppName(app)
            if processType != nil {
                throw UserFacingError.invalid("--process-type is not supported: a mount applies to every process type of \(appName) (and its deploy tasks and runs, by --phase); leave it out")
            }
            let spec = try StorageCommands.spec(mount, containerDir: containerDir)
            let phases = try MountPhase.parseList(phase)
            let readonly = try readonly || volumeReadonly || StorageCommands.readonly(volumeOptions)
            let result = try context.core.storage.mount(spec, on: appName, phases: phases, readonly: readonly, by: context.caller)
            let source = MountView(result.info).source
            switch result.change {
            case .created(let storageToo):
                if storageToo { context.print("storage \(source) created") }
                context.print("-----> Mounted \(source) at \(spec.containerPath) for \(appName) (phases: \(MountPhase.format(phases))\(readonly ? ", readonly" : ""))")
            case .updated:
                context.print("-----> Updated the mount of \(source) at \(spec.containerPath) for \(appName) (phases: \(MountPhase.format(phases))\(readonly ? ", readonly" : ""))")
            }
            context.print("       takes effect at the next deploy or ps:restart \(appName)")
        }
    }

    struct Unmount: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:unmount",
            abstract: "Unmount storage from an app; its data is kept.",
            discussion: "storage:unmount <app> <storage-or-host-path>:<container-path>, or <app> <storage> [--container-dir <path>] (needed only when the app mounts it twice).")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: ArgumentHelp("<storage-or-host-path>:<container-path>, or <storage>", valueName: "mount")) var mount: String
        @Option(help: "The path inside the container (Dokku's named-entry form).") var containerDir: String?
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let appName = try AppName(app)
            let source: MountSource, path: AbsolutePath?
            if containerDir == nil, !mount.contains(":") {
                (source, path) = (try MountSource(mount), nil)
            } else {
                let spec = try StorageCommands.spec(mount, containerDir: containerDir)
                (source, path) = (spec.source, spec.containerPath)
            }
            try context.core.storage.unmount(source, at: path, from: appName, by: context.caller)
            context.print("-----> Unmounted \(mount)\(containerDir.map { " from \($0)" } ?? "") from \(appName); the data is kept")
            context.print("       takes effect at the next deploy or ps:restart \(appName)")
        }
    }

    /// The mount's source as typed: before the last `:` in the short form, the whole
    /// argument with `--container-dir`.
    static func source(of mount: String, containerDir: String?) -> String {
        if containerDir != nil { return mount }
        return mount.lastIndex(of: ":").map { String(mount[..<$0]) } ?? mount
    }

    static func spec(_ mount: String, containerDir: String?) throws -> MountSpec {
        guard let containerDir else { return try MountSpec(mount) }
        guard !mount.contains(":") else {
            throw UserFacingError.invalid("give either <storage>:<container-path> or <storage> --container-dir <path>, not both")
        }
        return try MountSpec(source: mount, containerPath: containerDir)
    }

    /// Dokku's `--volume-options`: only the bind modes mean something here.
    static func readonly(_ options: String?) throws -> Bool {
        var readonly = false
        for option in (options ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !option.isEmpty {
            switch option {
            case "ro": readonly = true
            case "rw": readonly = false
            default:
                throw UserFacingError.invalid("volume option \(quoted(option)) is not supported: Slipway binds storage read-write (rw) or read-only (ro); other options (relabeling, propagation, chown-on-mount) change the host directory or how it is shared")
            }
        }
        return readonly
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "storage:list", abstract: "List an app's mounts (without an app: the storage you own).")
        static let rule = AccessRule.app(.read)
        @Argument var app: String?
        @OptionGroup var output: FormatOption
        var requirement: Requirement { app.map { .app($0, .read) } ?? .user }

        func execute(in context: CommandContext) throws {
            guard let app else {
                let storages = try context.core.storage.storages(for: context.principal).map(StorageView.init)
                if output.isJSON { return try context.printJSON(storages) }
                context.print(Text.table(["NAME", "OWNER", "MOUNTED BY", "DIRECTORY"], storages.map {
                    [$0.name, $0.owner ?? "-", $0.mountedBy.joined(separator: ","), $0.directory]
                }))
                return
            }
            let mounts = try context.core.storage.mounts(of: try AppName(app)).map(MountView.init)
            if output.isJSON { return try context.printJSON(mounts.map(DokkuMountView.init)) }
            context.print(Text.heading("\(app) volume bind-mounts"))
            for mount in mounts { context.print("     \(mount.source):\(mount.containerPath)") }
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:report", abstract: "Show an app's mounts (Dokku's keys; --format json: one object).",
            discussion: "One line per phase (build, deploy, run: the -v options) and per mount field (attachment.<n>.<field>), "
                + "as Dokku's report; attachment.<n>.owner is the storage's owner.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let mounts = try context.core.storage.mounts(of: try AppName(app)).map(MountView.init)
            let values = Self.values(mounts)
            if output.isJSON {
                // Dokku's keys without the report's prefix and, as Dokku 0.38 still emits them, with it.
                var object: [String: String] = [:]
                for (key, value) in values { object[key] = value; object["storage-" + key] = value }
                return try context.printJSON(object)
            }
            context.print(Text.heading("\(app) storage information"))
            let width = max(31, values.keys.map { $0.count + 10 }.max() ?? 0)
            for key in values.keys.sorted() {
                let label = "Storage " + key.replacingOccurrences(of: "-", with: " ").replacingOccurrences(of: ".", with: " ") + ":"
                context.print("       " + label.padding(toLength: max(width, label.count), withPad: " ", startingAt: 0) + values[key]!)
            }
        }

        /// "deploy-mounts" → "-v /host:/app/x:ro ...", "attachment.1.entry-name" → "uploads", ...
        static func values(_ mounts: [MountView]) -> [String: String] {
            func binds(_ phase: String) -> String {
                mounts.filter { $0.phases.contains(phase) }.map { "-v \($0.hostDirectory):\($0.containerPath)\($0.readonly ? ":ro" : "")" }
                    .joined(separator: " ")
            }
            // Storage is never bound into builds.
            var values = ["build-mounts": "", "deploy-mounts": binds("deploy"), "run-mounts": binds("run")]
            for (index, mount) in mounts.enumerated() {
                let prefix = "attachment.\(index + 1)."
                let fields = ["entry-name": mount.kind == "storage" ? mount.source : "", "host-path": mount.hostDirectory,
                              "container-path": mount.containerPath, "phases": mount.phases.joined(separator: ","),
                              "process-type": "_default_", "subpath": "", "readonly": String(mount.readonly),
                              "volume-options": "", "volume-chown": "", "owner": mount.owner ?? ""]
                for (field, value) in fields { values[prefix + field] = value }
            }
            return values
        }
    }

    struct ListEntries: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:list-entries", abstract: "List the storage entries you own (admins: all).")
        static let rule = AccessRule.user
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let entries = try context.core.storage.entries(for: context.principal).map(EntryView.init)
            if output.isJSON { return try context.printJSON(entries) }
            guard !entries.isEmpty else { return context.print("-----> No storage entries registered") }
            context.print("-----> Storage entries:")
            for entry in entries { context.print("       \(entry.name)\t\(entry.scheduler)\t\(entry.host_path)") }
        }
    }

    struct Info: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "storage:info", abstract: "Show one storage entry: its directory, owner setting, mode and mounts.")
        static let rule = AccessRule.user
        @Argument var name: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .storageOwner(name, allowMissing: false) }

        func execute(in context: CommandContext) throws {
            let entry = EntryView(try context.core.storage.info(try StorageName(name)))
            if output.isJSON { return try context.printJSON(entry) }
            context.print("-----> Storage entry \(entry.name)")
            for (label, value) in [("Scheduler", entry.scheduler), ("Host path", entry.host_path), ("Chown", entry.chown ?? ""),
                                   ("Mode", entry.mode ?? ""), ("Owner", entry.owner ?? ""), ("Mounted by", entry.mounted_by.joined(separator: ", "))]
            where !value.isEmpty {
                context.print("       " + (label + ":").padding(toLength: 18, withPad: " ", startingAt: 0) + value)
            }
        }
    }

    struct SetProperty: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:set", abstract: "Set (or, without a value, clear) a storage property: chown or mode.",
            discussion: "chown: as storage:create --chown, applied as each app that mounts it starts next; cleared: the image's user. "
                + "mode: as --mode, applied to the directory at once and at each start; cleared: permissions left as they are.")
        static let rule = AccessRule.user
        @Argument var name: String
        @Argument var property: String
        @Argument var value: String?
        var requirement: Requirement { .storageOwner(name, allowMissing: false) }

        func execute(in context: CommandContext) throws {
            let storage = try StorageName(name)
            guard let known = StorageService.Property(rawValue: property) else {
                if ["access-mode", "namespace", "reclaim-policy", "size", "storage-class-name"].contains(property) {
                    throw UserFacingError.invalid("\(property) is a k3s property (a PersistentVolumeClaim's); Slipway's storage is a directory on this host, with chown and mode")
                }
                throw UserFacingError.invalid("Invalid property specified, valid properties include: \(StorageService.Property.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let value = value.flatMap { $0.isEmpty ? nil : $0 }
            let properties = try context.core.storage.set(storage, known, to: value, by: context.caller)
            context.print("-----> Storage entry \(storage) updated")
            switch known {
            case .chown:
                context.print("       " + (properties.chown.map(StorageCommands.ownerNote)
                    ?? "Directory owner: the image's user of each app that mounts it, set as it starts"))
            case .mode:
                context.print("       " + (properties.mode.map { "Directory mode: \($0.rawValue)" } ?? "Directory mode: left as it is"))
            }
        }
    }

    struct Destroy: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "storage:destroy",
            abstract: "Delete a storage and its data: type its name again on stdin, or pass --force (refused while mounted).")
        static let rule = AccessRule.user
        @Argument var name: String
        @Flag(help: "Do not ask for the name again.") var force = false
        var requirement: Requirement { .storageOwner(name, allowMissing: false) }

        func execute(in context: CommandContext) throws {
            let storage = try StorageName(name)
            try context.confirmDestruction(of: storage.rawValue, "storage \(storage) and its data", forced: force)
            try context.core.storage.destroy(storage, by: context.caller)
            context.print("storage \(storage) and its data destroyed")
        }
    }
}

/// A mount as Dokku's `storage:list <app> --format json` shows it, with Slipway's phases.
struct DokkuMountView: Codable {
    let entry_name: String
    let host_path: String
    let container_path: String
    /// "ro" for a read-only mount, "" otherwise (Dokku's bind options).
    let volume_options: String
    let phases: [String]

    init(_ view: MountView) {
        entry_name = view.kind == "storage" ? view.source : ""
        host_path = view.hostDirectory
        container_path = view.containerPath
        volume_options = view.readonly ? "ro" : ""
        phases = view.phases
    }
}

/// A mount as `storage:list/report --format json` show it.
struct MountView: Codable {
    let source: String
    let kind: String
    let containerPath: String
    let phases: [String]
    let readonly: Bool
    let hostDirectory: String
    let owner: String?

    init(_ info: StorageService.MountInfo) {
        switch info.source {
        case .storage(let name): source = name.rawValue; kind = "storage"
        case .hostPath(let path): source = path.rawValue; kind = "host-path"
        }
        containerPath = info.containerPath
        phases = info.phases.sorted().map(\.rawValue)
        readonly = info.readonly
        hostDirectory = info.hostDirectory
        owner = info.owner?.rawValue
    }
}

/// A storage entry as Dokku's `storage:info` / `storage:list-entries --format json`
/// show it (`chown` and `mode` only when set), with Slipway's owner and mounting apps.
struct EntryView: Codable {
    let name: String
    let scheduler: String
    let host_path: String
    let chown: String?
    let mode: String?
    let schema_version: Int
    let owner: String?
    let mounted_by: [String]

    init(_ entry: (info: StorageService.StorageInfo, properties: StorageService.Properties)) {
        name = entry.info.storage.name.rawValue
        scheduler = "docker-local"
        host_path = entry.info.hostDirectory
        chown = entry.properties.chown?.rawValue
        mode = entry.properties.mode?.rawValue
        schema_version = 1
        owner = entry.info.owner?.rawValue
        mounted_by = entry.info.mountedBy.map(\.rawValue)
    }
}

/// A storage as `storage:list --format json` (no app) shows it.
struct StorageView: Codable {
    let name: String
    let owner: String?
    let mountedBy: [String]
    let directory: String
    let createdAt: Date

    init(_ info: StorageService.StorageInfo) {
        name = info.storage.name.rawValue
        owner = info.owner?.rawValue
        mountedBy = info.mountedBy.map(\.rawValue)
        directory = info.hostDirectory
        createdAt = info.storage.createdAt
    }
}
