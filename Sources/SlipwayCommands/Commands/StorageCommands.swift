import ArgumentParser
import Foundation
import SlipwayCore

/// `storage:*`: persistent directories that survive deploys, tasks and `run`.
enum StorageCommands {
    struct Create: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "storage:create", abstract: "Create a managed storage directory that you own.")
        static let rule = AccessRule.user
        @Argument(help: "Lowercase letters, digits and '-'.") var name: String
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let storage = try context.core.storage.create(try StorageName(name), by: context.caller)
            context.print("storage \(storage.name) created; mount it with: storage:mount <app> \(storage.name):/app/<dir>")
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
        static let configuration = CommandConfiguration(commandName: "storage:report", abstract: "Show an app's mounts with phases, host directories and owners.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let mounts = try context.core.storage.mounts(of: try AppName(app)).map(MountView.init)
            if output.isJSON { return try context.printJSON(mounts) }
            context.print(Text.heading("\(app) storage information"))
            context.print(Text.table(["SOURCE", "CONTAINER PATH", "PHASES", "MODE", "HOST DIRECTORY", "OWNER"], mounts.map {
                [$0.source, $0.containerPath, $0.phases.joined(separator: ","), $0.readonly ? "ro" : "rw", $0.hostDirectory, $0.owner ?? "-"]
            }))
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
