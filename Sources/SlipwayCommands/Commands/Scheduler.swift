import ArgumentParser
import Foundation
import SlipwayCore
import SlipwayKubernetes

/// `scheduler:*`: where an app's processes run (this host, or a Kubernetes cluster).
enum SchedulerCommands {
    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "scheduler:set",
            abstract: "Choose where an app runs: local (this host) or kubernetes (a cluster); --global sets the default (admin).",
            discussion: "Examples: scheduler:set web kubernetes; scheduler:set --global local. Dokku's form scheduler:set web selected kubernetes works too. Config, storage, domains and releases are kept; the next deploy uses the new scheduler. Leaving kubernetes for local removes the app's namespace and objects from the cluster at once (refused when the cluster cannot be reached; --force switches anyway and leaves them there); the app serves from this host again from its next deploy.")
        static let rule = AccessRule.app(.owner)
        @Flag(name: .long, help: "Set the default of apps that set none (admins only).") var global = false
        @Flag(name: .long, help: "Switch to local even when the cluster cannot be reached, leaving the app's objects there.") var force = false
        @Argument(help: "APP kubernetes|local, or with --global: kubernetes|local.") var words: [String] = []

        var requirement: Requirement { global ? .admin : .app(words.first ?? "", .owner) }

        /// The scheduler word, after an optional Dokku `selected` key.
        func schedulerWord() throws -> String {
            var rest = global ? words : Array(words.dropFirst())
            if rest.first == "selected" { rest.removeFirst() }
            guard rest.count == 1 else {
                throw UserFacingError(.usage, global ? "usage: scheduler:set --global kubernetes|local" : "usage: scheduler:set APP kubernetes|local")
            }
            return rest[0]
        }

        func execute(in context: CommandContext) throws {
            let scheduler = try Scheduler.parse(try schedulerWord())
            let app = global ? nil : try AppName(words[0])
            guard let app else {
                try context.core.scheduler.set(nil, scheduler, by: context.caller)
                return context.print("-----> Apps without a scheduler of their own now use \(scheduler.rawValue)")
            }
            try context.core.deploys.setScheduler(app, scheduler, force: force, by: context.caller, output: context.progress)
            context.print("-----> \(app) now uses the \(scheduler.rawValue) scheduler from its next deploy"
                + (scheduler == .local ? " (git push, or ps:rebuild \(app), serves it from this host)" : ""))
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "scheduler:report", abstract: "Show which scheduler runs an app, and the cluster, namespace and registry it would use.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        /// What is printed; the cluster's file and context only to admins (host details).
        struct View: Encodable {
            let app: String
            let scheduler: String
            let appScheduler: String?
            let defaultScheduler: String
            let namespace: String
            let kubeconfig: String?
            let kubeContext: String?
            let registryServer: String?
            let registryImageRepo: String?
            let registryLoggedIn: Bool
        }

        func execute(in context: CommandContext) throws {
            let report = try context.core.scheduler.report(try AppName(app))
            let admin = context.principal.isAdmin
            let view = View(app: report.app, scheduler: report.scheduler.rawValue, appScheduler: report.appScheduler?.rawValue,
                            defaultScheduler: report.defaultScheduler.rawValue, namespace: KubeNames.namespace(of: report.app),
                            kubeconfig: admin ? report.kubeconfig : nil, kubeContext: admin ? report.kubeContext : nil,
                            registryServer: report.registryServer, registryImageRepo: report.registryImageRepo,
                            registryLoggedIn: report.registryLoggedIn)
            if output.isJSON { return try context.printJSON(view) }
            context.print(Text.heading("\(report.app) scheduler information"))
            context.print("       Scheduler selected:       \(view.scheduler)\(view.appScheduler == nil ? " (the default)" : "")")
            context.print("       Scheduler default:        \(view.defaultScheduler)")
            context.print("       Kubernetes namespace:     \(view.namespace)")
            if admin {
                context.print("       Kubeconfig:               \(view.kubeconfig ?? "not set (kubeconfig in etc/slipway.toml)")")
                context.print("       Kube context:             \(view.kubeContext ?? "the kubeconfig's current context")")
            }
            context.print("       Registry server:          \(view.registryServer ?? "not set (registry:set server)")")
            context.print("       Registry image repo:      \(view.registryImageRepo ?? "slipway (the default)")")
            context.print("       Registry credentials:     \(view.registryLoggedIn ? "stored" : "none (registry:login)")")
        }
    }
}

/// `k8s:render`: the manifests the kubernetes scheduler applies for an app's current release.
struct K8sRender: QueryCommand {
    static let configuration = CommandConfiguration(
        commandName: "k8s:render",
        abstract: "Print the Kubernetes objects of an app's current release (YAML documents, or --format json), for review.",
        discussion: "Secret values are shown as <redacted> unless --show-secrets is given. The output is sorted and the same for the same state.")
    static let rule = AccessRule.admin
    @Argument var app: String
    @OptionGroup var output: FormatOption
    @Flag(name: .long, help: "Print Secret values (base64) instead of <redacted>.") var showSecrets = false
    var requirement: Requirement { .admin }

    func execute(in context: CommandContext) throws {
        let state = try context.core.clusterState(of: try AppName(app))
        let objects = try KubernetesRenderer(redactSecrets: !showSecrets).render(KubernetesAppSpec(state: state))
        if output.isJSON {
            return try context.printJSON(KubeValue.object(["apiVersion": "v1", "kind": "List", "items": .array(objects.map(\.body))]))
        }
        context.stdout.write(objects.yamlDocuments())
    }
}

/// `registry:*`: the image registry a cluster pulls apps' images from.
enum Registry {
    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "registry:set",
            abstract: "Set the image registry's server or image-repo (an empty value unsets it).",
            discussion: "Example: registry:set server registry.example.com; registry:set image-repo team/apps. Images are pushed as <server>/<image-repo>/<app>:<release>. Server-wide: Dokku's --global is accepted; per-app values are not supported.")
        static let rule = AccessRule.admin
        @Flag(name: .long, help: "Accepted for Dokku's syntax; these settings are always server-wide.") var global = false
        @Argument(help: "server or image-repo.") var property: String
        @Argument(help: "The value; empty to unset.") var value: String = ""
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            guard let key = SchedulerService.RegistryProperty(rawValue: property) else {
                throw UserFacingError.invalid("unknown registry property \(quoted(property)); use server or image-repo (per-app registry settings are not supported)")
            }
            try context.core.scheduler.setRegistry(key, to: value, by: context.caller)
            context.print(value.isEmpty ? "-----> Unset the registry's \(property)" : "-----> Set the registry's \(property) to \(value)")
        }
    }

    struct Login: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "registry:login",
            abstract: "Store credentials for an image registry; the password is read from stdin.",
            discussion: "Example: echo \"$TOKEN\" | ssh host registry:login registry.example.com ci. Stored 0600 in the data directory; never printed. A password argument is refused (it would be in shell histories and process lists).")
        static let rule = AccessRule.admin
        @Flag(name: .long, help: "Accepted for Dokku's syntax; the password is always read from stdin.") var passwordStdin = false
        @Argument var server: String
        @Argument var user: String
        @Argument(help: .hidden) var password: String?
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            guard password == nil else {
                throw UserFacingError.invalid("registry:login takes the password on standard input, not as an argument (arguments end up in shell histories and process lists); nothing was stored: echo \"$TOKEN\" | ssh ... registry:login \(server) \(user)")
            }
            let secret = try context.readInput("the registry password", limit: 8192, hint: "echo \"$TOKEN\" | ssh ... registry:login \(server) \(user)")
            try context.core.scheduler.login(server: server, user: user, password: secret, by: context.caller)
            context.print("-----> Stored the credentials of \(user) for \(server.lowercased())")
        }
    }
}
