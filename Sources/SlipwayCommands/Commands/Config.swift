import ArgumentParser
import Foundation
import SlipwayCore

/// The words of a `config:*` command: `[--global] <app> ...`. With `--global`
/// there is no app word and the command needs admin rights.
struct ConfigTarget: ParsableArguments {
    @Flag(help: "Act on the global defaults every app inherits (admins only).") var global = false
    @Argument(help: ArgumentHelp("The app (left out with --global), then the command's own words.", valueName: "app ..."))
    var words: [String] = []

    /// The scope and the words after the app name; `minimum` is how many words must follow.
    func scope(minimum: Int, usage: String) throws -> (ConfigScope, [String]) {
        let rest = global ? words : Array(words.dropFirst())
        guard global || !words.isEmpty, rest.count >= minimum else {
            throw UserFacingError(.usage, "usage: \(usage)")
        }
        return (global ? .global : .app(try AppName(words[0])), rest)
    }

    func requirement(_ role: AppRole) -> Requirement {
        global ? .admin : .app(words.first ?? "", role)
    }
}

enum Config {
    /// A deployed app restarts with a new release carrying the new config, unless
    /// --no-restart (then the next deploy or ps:restart picks it up). Global vars
    /// reach each app at its next deploy. One core call: a change that would
    /// redeploy a locked app, or one being deployed, is refused, changing nothing.
    static func change(_ scope: ConfigScope, _ change: DeployService.ConfigChange, noRestart: Bool, _ context: CommandContext,
                       printChange: () -> Void) throws {
        try context.core.deploys.changeConfig(scope, change, restart: !noRestart, by: context.caller, changed: {
            printChange()
            switch scope {
            case .global: context.print("       (each app gets global vars at its next deploy or ps:restart)")
            case .app(let app) where noRestart: context.print("       (not restarted: ps:restart \(app) applies the change)")
            case .app: break
            }
        }, output: context.progress)
    }

    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "config:set",
            abstract: "Set environment variables: config:set <app> KEY=VALUE...",
            discussion: "Values may contain spaces, quotes, '=' and any text; with --encoded each value is base64 (for newlines or binary-safe transport).")
        static let rule = AccessRule.app(.write)
        @Flag(help: "Do not restart the app with the new config.") var noRestart = false
        @Flag(help: "Values are base64-encoded.") var encoded = false
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.write) }

        func execute(in context: CommandContext) throws {
            let (scope, words) = try target.scope(minimum: 1, usage: "config:set [--encoded] [--no-restart] <app> KEY=VALUE...")
            let pairs = try words.map { word -> (EnvKey, String) in
                // By scalar: "=" followed by a combining mark is one Character that is not "=".
                let scalars = word.unicodeScalars
                guard let equals = scalars.firstIndex(of: "=") else {
                    throw UserFacingError.invalid("\(quoted(word)) is not KEY=VALUE; write e.g. config:set \(scope.label) GREETING=hello")
                }
                let key = try EnvKey(String(scalars[..<equals]))
                return (key, try decodeValue(String(scalars[scalars.index(after: equals)...]), key: key))
            }
            try Config.change(scope, .set(pairs), noRestart: noRestart, context) {
                context.print("-----> Setting config vars")
                for (key, _) in pairs { context.print("       \(key)") }
            }
        }

        private func decodeValue(_ raw: String, key: EnvKey) throws -> String {
            var value = raw
            if encoded {
                guard let data = Data(base64Encoded: raw), let text = String(validating: data, as: UTF8.self) else {
                    throw UserFacingError.invalid("the value of \(key) is not base64 of UTF-8 text (--encoded); encode it with: base64 -w0")
                }
                value = text
            }
            guard !value.unicodeScalars.contains("\0") else {
                throw UserFacingError.invalid("the value of \(key) contains a NUL byte, which no environment can hold")
            }
            return value
        }
    }

    struct Unset: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "config:unset", abstract: "Remove environment variables: config:unset <app> KEY...")
        static let rule = AccessRule.app(.write)
        @Flag(help: "Do not restart the app with the new config.") var noRestart = false
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.write) }

        func execute(in context: CommandContext) throws {
            let (scope, words) = try target.scope(minimum: 1, usage: "config:unset [--no-restart] <app> KEY...")
            let keys = try words.map { try EnvKey($0) }
            try Config.change(scope, .unset(keys), noRestart: noRestart, context) {
                context.print("-----> Unsetting config vars")
                for key in keys { context.print("       \(key)") }
            }
        }
    }

    struct Clear: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "config:clear", abstract: "Remove every environment variable of an app.")
        static let rule = AccessRule.app(.write)
        @Flag(help: "Do not restart the app with the new config.") var noRestart = false
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.write) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:clear [--no-restart] <app>")
            try Config.change(scope, .clear, noRestart: noRestart, context) {
                context.print("-----> Clearing config vars")
            }
        }
    }

    struct Get: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "config:get", abstract: "Print one variable's value; exit 1 when it is not set.")
        static let rule = AccessRule.app(.read)
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, words) = try target.scope(minimum: 1, usage: "config:get <app> KEY")
            guard words.count == 1 else { throw UserFacingError(.usage, "usage: config:get <app> KEY (one key)") }
            guard let value = try context.core.config.get(try EnvKey(words[0]), in: scope) else {
                // Dokku's contract: nothing printed, exit 1.
                throw UserFacingError(.negative, "")
            }
            context.print(value)
        }
    }

    struct Show: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "config:show", abstract: "Show an app's environment variables.")
        static let rule = AccessRule.app(.read)
        @OptionGroup var target: ConfigTarget
        @OptionGroup var output: FormatOption
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:show <app>")
            let vars = try context.core.config.vars(scope)
            if output.isJSON { return try context.printJSON(Config.dictionary(vars)) }
            context.print(Text.heading("\(scope == .global ? "global" : scope.label) env vars"))
            let width = (vars.map { $0.key.rawValue.count }.max() ?? 0) + 2
            for (key, value) in vars { context.print("\(key):".padding(toLength: width, withPad: " ", startingAt: 0) + value) }
        }
    }

    struct Keys: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "config:keys", abstract: "List an app's variable names.")
        static let rule = AccessRule.app(.read)
        @OptionGroup var target: ConfigTarget
        @OptionGroup var output: FormatOption
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:keys <app>")
            let keys = try context.core.config.vars(scope).map(\.key.rawValue)
            if output.isJSON { return try context.printJSON(keys) }
            for key in keys { context.print(key) }
        }
    }

    struct Export: QueryCommand {
        enum Format: String, ExpressibleByArgument, CaseIterable { case exports, envfile, json, shell }

        static let configuration = CommandConfiguration(
            commandName: "config:export",
            abstract: "Print variables for a shell or env file; round-trips any value.",
            discussion: "exports: export K='v' lines for eval; shell: K='v' on one line; envfile: K=\"v\" lines with \\n, \\\" and \\$ escaped; json: an object.")
        static let rule = AccessRule.app(.read)
        @Option(help: "exports (default), envfile, json or shell.") var format: Format = .exports
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:export [--format exports|envfile|json|shell] <app>")
            let vars = try context.core.config.vars(scope)
            switch format {
            case .json: try context.printJSON(Config.dictionary(vars))
            case .exports: for (k, v) in vars { context.print("export \(k)=\(ShellQuoting.singleQuoted(v))") }
            case .envfile: for (k, v) in vars { context.print("\(k)=\(ShellQuoting.doubleQuotedEscaped(v))") }
            case .shell: context.print(vars.map { "\($0.key)=\(ShellQuoting.singleQuoted($0.value))" }.joined(separator: " "))
            }
        }
    }

    static func dictionary(_ vars: [(key: EnvKey, value: String)]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: vars.map { ($0.key.rawValue, $0.value) })
    }
}
