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
            let (scope, words) = try target.scope(minimum: 0, usage: "config:set [--encoded] [--no-restart] <app> KEY=VALUE...")
            guard !words.isEmpty else {
                throw UserFacingError(.usage, "At least one env pair must be given: config:set [--encoded] [--no-restart] \(scope.label) KEY=VALUE...")
            }
            var pairs: [(EnvKey, String)] = []
            for word in words {
                // By scalar: "=" followed by a combining mark is one Character that is not "=".
                let scalars = word.unicodeScalars
                guard let equals = scalars.firstIndex(of: "=") else {
                    throw UserFacingError.invalid(Self.notAPair(word, after: pairs.last, scope: scope))
                }
                let key = try EnvKey(String(scalars[..<equals]))
                pairs.append((key, try decodeValue(String(scalars[scalars.index(after: equals)...]), key: key)))
            }
            try Config.change(scope, .set(pairs), noRestart: noRestart, context) {
                context.print("-----> Setting config vars")
                for (key, _) in pairs { context.print("       \(key)") }
            }
        }

        /// A word without `=` right after a pair is most often the rest of a value with
        /// a space: ssh joins its arguments with spaces and the server splits them again,
        /// so the value needs quotes the server sees too.
        static func notAPair(_ word: String, after previous: (EnvKey, String)?, scope: ConfigScope) -> String {
            guard let (key, value) = previous else {
                return "\(quoted(word)) is not KEY=VALUE; write e.g. config:set \(scope.label) GREETING=hello"
            }
            // quoted() escapes what could forge the line; its own outer quotes are dropped here.
            let joined = String(quoted(value + " " + word, limit: 40).dropFirst().dropLast())
            return "\(quoted(word)) is not KEY=VALUE; if it belongs to the value of \(key), quote the pair for the server too "
                + "(ssh joins its arguments with spaces): config:set \(scope.label) '\(key)=\"\(joined)\"', "
                + "or send the value base64-encoded with config:set --encoded"
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
            let (scope, words) = try target.scope(minimum: 0, usage: "config:unset [--no-restart] <app> KEY...")
            guard !words.isEmpty else {
                throw UserFacingError(.usage, "At least one key must be given: config:unset [--no-restart] \(scope.label) KEY...")
            }
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
            for line in Config.pretty(vars) { context.print(line) }
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
        enum Format: String, ExpressibleByArgument, CaseIterable {
            case exports, envfile, json, shell, pretty
            case dockerArgs = "docker-args", dockerArgsKeys = "docker-args-keys", jsonList = "json-list", packKeys = "pack-keys"
        }

        static let configuration = CommandConfiguration(
            commandName: "config:export",
            abstract: "Print variables for a shell, an env file or docker; round-trips any value.",
            discussion: """
                exports: export K='v' lines for eval; shell: K='v' on one line; envfile: K="v" lines with \\n, \\" and \\$ escaped; \
                json: an object; json-list: [{"name": K, "value": v}]; docker-args: --env=K='v' on one line; \
                docker-args-keys: --env=K; pack-keys: --env K; pretty: as config:show, without its heading.
                """)
        static let rule = AccessRule.app(.read)
        @Option(help: "exports (default), envfile, json, json-list, shell, docker-args, docker-args-keys, pack-keys or pretty.")
        var format: Format = .exports
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:export [--format \(Format.allCases.map(\.rawValue).joined(separator: "|"))] <app>")
            let vars = try context.core.config.vars(scope)
            // Every format that carries values single-quotes them (or escapes them inside
            // double quotes) so that eval of the output runs nothing; keys are [A-Za-z0-9_].
            func line(_ prefix: String) -> String { vars.map { "\(prefix)\($0.key)=\(ShellQuoting.singleQuoted($0.value))" }.joined(separator: " ") }
            switch format {
            case .json: try context.printJSON(Config.dictionary(vars))
            case .jsonList: try context.printJSON(vars.map { ["name": $0.key.rawValue, "value": $0.value] })
            case .exports: for (k, v) in vars { context.print("export \(k)=\(ShellQuoting.singleQuoted(v))") }
            case .envfile: for (k, v) in vars { context.print("\(k)=\(ShellQuoting.doubleQuotedEscaped(v))") }
            case .shell: context.print(line(""))
            case .dockerArgs: context.print(line("--env="))
            case .dockerArgsKeys: context.print(vars.map { "--env=\($0.key)" }.joined(separator: " "))
            case .packKeys: context.print(vars.map { "--env \($0.key)" }.joined(separator: " "))
            case .pretty: for line in Config.pretty(vars) { context.print(line) }
            }
        }
    }

    struct Import: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "config:import",
            abstract: "Set variables from an env file or a JSON object on stdin: config:import <app> < .env",
            discussion: "KEY=VALUE lines (export, quotes and # comments as in config:export's envfile and exports formats) or {\"KEY\": \"value\"}; nothing in them is expanded. With --replace they become the whole config.")
        static let rule = AccessRule.app(.write)
        @Flag(help: "Remove every variable not in the input.") var replace = false
        @Flag(help: "Do not restart the app with the new config.") var noRestart = false
        @Option(help: "envfile or json (default: json when the input is a JSON object).") var format: ImportFormat?
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.write) }

        enum ImportFormat: String, ExpressibleByArgument, CaseIterable { case envfile, json }

        func execute(in context: CommandContext) throws {
            let usage = "config:import [--replace] [--no-restart] [--format envfile|json] <app> < .env"
            let (scope, words) = try target.scope(minimum: 0, usage: usage)
            // Dokku names a file, "-" for stdin; the server's files are not the caller's to read.
            guard words.isEmpty || words == ["-"] else {
                throw UserFacingError(.usage, "config:import reads standard input only, never a file on the server: \(usage.replacingOccurrences(of: "<app>", with: scope.label))")
            }
            let text = try context.readInput("the env file", limit: 1 << 20, hint: "pipe it in: ssh <host> config:import \(scope.label) < .env")
            let pairs = try ConfigImport.parse(text, format: format.flatMap { ConfigImport.Format(rawValue: $0.rawValue) })
            try Config.change(scope, replace ? .replace(pairs) : .set(pairs), noRestart: noRestart, context) {
                context.print(replace ? "-----> Replacing config vars" : "-----> Setting config vars")
                for (key, _) in pairs { context.print("       \(key)") }
            }
        }
    }

    struct Bundle: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "config:bundle",
            abstract: "Write a tar of one file per variable (named by its key, holding its value) to stdout.")
        static let rule = AccessRule.app(.read)
        @OptionGroup var target: ConfigTarget
        var requirement: Requirement { target.requirement(.read) }

        func execute(in context: CommandContext) throws {
            let (scope, _) = try target.scope(minimum: 0, usage: "config:bundle <app> > env.tar")
            let vars = try context.core.config.vars(scope)
            _ = context.stdout.write(bytes: Tar.archive(vars.map { (name: $0.key.rawValue, contents: Data($0.value.utf8)) }))
        }
    }

    /// Dokku's aligned `KEY:  value` lines: the keys padded to the longest plus its
    /// colon, then two spaces.
    static func pretty(_ vars: [(key: EnvKey, value: String)]) -> [String] {
        let width = (vars.map { $0.key.rawValue.count }.max() ?? 0) + 3
        return vars.map { "\($0.key):".padding(toLength: width, withPad: " ", startingAt: 0) + $0.value }
    }

    static func dictionary(_ vars: [(key: EnvKey, value: String)]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: vars.map { ($0.key.rawValue, $0.value) })
    }
}

/// A ustar archive of regular files, mode 0600 (what `config:bundle` writes); a
/// name longer than ustar's 100 bytes (keys may have 255) goes in a pax header.
enum Tar {
    static func archive(_ files: [(name: String, contents: Data)]) -> Data {
        var out = Data()
        func entry(_ name: String, type: Character, _ contents: Data) {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int) { for (i, byte) in text.utf8.enumerated() { header[offset + i] = byte } }
            func octal(_ value: Int, width: Int) -> String {
                let digits = String(value, radix: 8)
                return String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
            }
            header.replaceSubrange(0..<min(100, name.utf8.count), with: name.utf8.prefix(100))
            put(octal(0o600, width: 8), at: 100)
            put(octal(0, width: 8), at: 108)
            put(octal(0, width: 8), at: 116)
            put(octal(contents.count, width: 12), at: 124)
            put(octal(0, width: 12), at: 136)
            put("        ", at: 148)
            put(String(type), at: 156)
            put("ustar", at: 257)
            put("00", at: 263)
            put(octal(header.reduce(0) { $0 + Int($1) }, width: 7) + "\0 ", at: 148)
            out.append(contentsOf: header)
            out.append(contents)
            out.append(Data(count: (512 - contents.count % 512) % 512))
        }
        for file in files {
            if file.name.utf8.count > 100 {
                // "<length> path=<name>\n", the length counting its own digits.
                let body = " path=\(file.name)\n"
                var length = body.utf8.count + 1
                while String(length).count + body.utf8.count > length { length += 1 }
                entry("PaxHeader", type: "x", Data((String(length) + body).utf8))
            }
            entry(file.name, type: "0", file.contents)
        }
        out.append(Data(count: 1024))
        return out
    }
}
