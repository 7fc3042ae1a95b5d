import ArgumentParser
import SlipwayCore

/// The whole command surface, in the order `help` lists it.
public enum CommandTree {
    public static let commands: [any GatedCommand.Type] = [
        Apps.Create.self, Apps.Exists.self, Apps.List.self, Apps.Report.self, Apps.Rename.self, Apps.Clone.self, Apps.Destroy.self,
        Apps.Lock.self, Apps.Unlock.self, Apps.Locked.self,
        ACL.Add.self, ACL.Remove.self, ACL.List.self,
        Config.Set.self, Config.Unset.self, Config.Get.self, Config.Show.self, Config.Keys.self,
        Config.Export.self, Config.Clear.self, Config.Import.self, Config.Bundle.self,
        StorageCommands.Create.self, StorageCommands.Mount.self, StorageCommands.Unmount.self,
        StorageCommands.List.self, StorageCommands.Report.self, StorageCommands.Destroy.self,
        StorageCommands.ListEntries.self, StorageCommands.Info.self, StorageCommands.SetProperty.self,
        Resource.Limit.self, Resource.LimitClear.self, Resource.Reserve.self, Resource.ReserveClear.self, Resource.Report.self,
        Users.Add.self, Users.Remove.self, Users.List.self, Users.Report.self, Users.SetAdmin.self,
        SSHKeys.Add.self, SSHKeys.Remove.self, SSHKeys.List.self, WhoAmI.self,
        Run.self, RunDetached.self, RunList.self, RunStop.self, Outputs.RunLogs.self, Enter.self,
        Cron.List.self, Cron.RunNow.self, Cron.Suspend.self, Cron.Resume.self, Cron.Logs.self,
        Ps.Report.self, Ps.Set.self, Ps.Scale.self, Ps.Restart.self, Ps.Start.self, Ps.Stop.self, Ps.Rebuild.self,
        Checks.Report.self, Checks.Disable.self, Checks.Enable.self, Checks.Skip.self, Checks.Set.self,
        Releases.List.self, Releases.Rollback.self, Outputs.Release.self, Logs.self, DeployLockCommands.Status.self, DeployLockCommands.Unlock.self,
        Domains.Report.self, Domains.Add.self, Domains.Set.self, Domains.Remove.self, Domains.Clear.self, Domains.SetGlobal.self,
        Certs.Add.self, Certs.Remove.self, Certs.Report.self, ProxyReport.self, ProxyLogs.self,
        LetsEncrypt.Enable.self, LetsEncrypt.Disable.self, LetsEncrypt.Set.self, LetsEncrypt.List.self, LetsEncrypt.Renew.self,
        Postgres.Create.self, Postgres.List.self, Postgres.Info.self, Postgres.Link.self, Postgres.Unlink.self,
        Postgres.Restart.self, Postgres.Logs.self, Postgres.Destroy.self, ServicesBootstrap.self,
        Postgres.Connect.self, Postgres.Export.self, Postgres.Import.self, Postgres.Upgrade.self,
        Redis.Connect.self, Redis.Export.self, Redis.Import.self, Redis.Upgrade.self,
        Redis.Create.self, Redis.List.self, Redis.Info.self, Redis.Link.self, Redis.Unlink.self,
        Redis.Restart.self, Redis.Logs.self, Redis.Destroy.self,
        Postgres.Backup.self, Postgres.Backups.self, Postgres.Restore.self, Postgres.BackupSchedule.self, Postgres.BackupUnschedule.self,
        Redis.Backup.self, Redis.Backups.self, Redis.Restore.self, Redis.BackupSchedule.self, Redis.BackupUnschedule.self,
        SchedulerCommands.Set.self, SchedulerCommands.Report.self, K8sRender.self, Registry.Set.self, Registry.Login.self,
        Builds.List.self, Builds.Report.self, Repo.PurgeCache.self, Outputs.Build.self, Builder.Bootstrap.self, Builder.Report.self,
        Events.self, Help.self, Version.self,
        GitCommands.ReceivePack.self, GitCommands.UploadPack.self,
    ]

    /// Commands by wire name.
    public static let byName: [String: any GatedCommand.Type] = Dictionary(uniqueKeysWithValues: commands.map { ($0.name, $0) })

    /// Whether `principal` may run `command` at all (admin-only commands are hidden from others).
    public static func isVisible(_ command: any GatedCommand.Type, to principal: Principal) -> Bool {
        command.rule != .admin || principal.isAdmin
    }

    /// `help` (a listing), `help <command>` (its usage) or `help <namespace>` (the
    /// namespace's commands with their usage), for what the caller may run.
    public static func help(for name: String?, principal: Principal) throws -> String {
        guard let name else { return listing(for: principal) }
        if byName[name] == nil, isNamespace(name) { return namespaceListing(name, for: principal) }
        return try usage(of: try visibleCommand(name, for: principal))
    }

    /// Dokku's per-namespace help, `apps:help` and `apps --help` (or `-h`, or `apps`
    /// alone), as `help apps`; any other argv is returned unchanged.
    static func namespaceHelp(_ argv: [String]) -> [String] {
        guard let first = argv.first, byName[first] == nil else { return argv }
        if first.hasSuffix(":help"), isNamespace(String(first.dropLast(":help".count))), argv.count == 1 {
            return ["help", String(first.dropLast(":help".count))]
        }
        if isNamespace(first), argv.count == 1 || (argv.count == 2 && ["--help", "-h"].contains(argv[1])) {
            return ["help", first]
        }
        return argv
    }

    /// A namespace is the part before `:` of some command's name (`apps` of `apps:create`).
    static func isNamespace(_ name: String) -> Bool {
        !name.isEmpty && !name.contains(":") && commands.contains { $0.name.hasPrefix(name + ":") }
    }

    /// The commands of one namespace the caller may run, each with its usage line.
    static func namespaceListing(_ namespace: String, for principal: Principal) -> String {
        let visible = commands.filter {
            ($0.name == namespace || $0.name.hasPrefix(namespace + ":")) && isVisible($0, to: principal) && $0.configuration.shouldDisplay
        }
        guard !visible.isEmpty else { return "Usage: \(namespace)[:COMMAND]\n\nNo \(namespace) commands are yours to run.\n" }
        let lines = visible.map { command in
            (SlipwayRoot.usageString(for: command).replacingOccurrences(of: "slipway \(command.name)", with: command.name),
             command.configuration.abstract)
        }
        let width = (lines.map { $0.0.count }.max() ?? 0) + 2
        var text = "Usage: \(namespace)[:COMMAND]\n\nCommands you may run:\n"
        for (usage, abstract) in lines {
            text += "  \(usage.padding(toLength: width, withPad: " ", startingAt: 0))\(abstract)\n"
        }
        text += "\nRun \"help <command>\" or \"<command> --help\" for a command's arguments.\n"
        return text
    }

    /// The command named `name`, if the caller may run it; otherwise the error to show.
    static func visibleCommand(_ name: String, for principal: Principal) throws -> any GatedCommand.Type {
        guard let command = byName[name] else {
            throw UserFacingError(.usage, "unknown command \(quoted(name)); run help to see the commands you may run")
        }
        guard isVisible(command, to: principal) else {
            throw UserFacingError.denied("\(name) is for server admins only")
        }
        return command
    }

    static func usage(of command: any GatedCommand.Type) throws -> String {
        var text = SlipwayRoot.helpMessage(for: command, columns: 100)
        text = text.replacingOccurrences(of: "slipway \(command.name)", with: command.name)
        return text.hasSuffix("\n") ? text : text + "\n"
    }

    static func listing(for principal: Principal) -> String {
        let visible = commands.filter { isVisible($0, to: principal) && $0.configuration.shouldDisplay }
        let width = (visible.map { $0.name.count }.max() ?? 0) + 2
        var text = "Usage: <command> [arguments]   (\(principal.name)\(principal.isAdmin ? ", admin" : ""))\n\nCommands you may run:\n"
        for command in visible {
            let padded = command.name.padding(toLength: width, withPad: " ", startingAt: 0)
            text += "  \(padded)\(command.configuration.abstract)\n"
        }
        text += "\nRun \"help <command>\" or \"<command> --help\" for a command's arguments.\n"
        return text
    }
}

/// The root of the ArgumentParser tree; never run itself.
struct SlipwayRoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway",
        subcommands: CommandTree.commands.map { $0 as ParsableCommand.Type })
}
