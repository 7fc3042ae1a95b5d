import Foundation
import GRDB

/// Where config vars live: one app's environment, or the global defaults that
/// every app inherits (app values win).
public enum ConfigScope: Sendable, Equatable {
    case global
    case app(AppName)

    /// "web" or "--global", for messages.
    public var label: String {
        switch self {
        case .global: "--global"
        case .app(let name): name.rawValue
        }
    }
}

/// Environment variables of apps and the global defaults.
public struct ConfigService: Sendable {
    let store: Store

    /// Sets every pair in one transaction. Values may hold any text but NUL.
    public func set(_ pairs: [(EnvKey, String)], in scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            for (key, value) in pairs {
                try db.execute(sql: """
                    INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)
                    ON CONFLICT DO UPDATE SET value = excluded.value
                    """, arguments: [appID, key, value])
            }
            try db.audit(caller, app: scope.appName, detail: "set \(pairs.map(\.0.rawValue).joined(separator: ", "))")
        }
    }

    /// Removes the keys; keys that were not set are listed in the event, not an error (as Dokku).
    public func unset(_ keys: [EnvKey], in scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            for key in keys {
                try db.execute(sql: "DELETE FROM config_vars WHERE app_id IS ? AND key = ?", arguments: [appID, key])
            }
            try db.audit(caller, app: scope.appName, detail: "unset \(keys.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// Makes the pairs the scope's whole config, in one transaction (`config:import --replace`).
    public func replace(with pairs: [(EnvKey, String)], in scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            try db.execute(sql: "DELETE FROM config_vars WHERE app_id IS ?", arguments: [appID])
            for (key, value) in pairs {
                try db.execute(sql: "INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)", arguments: [appID, key, value])
            }
            try db.audit(caller, app: scope.appName, detail: "replaced all config with \(pairs.map(\.0.rawValue).joined(separator: ", "))")
        }
    }

    public func clear(_ scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            try db.execute(sql: "DELETE FROM config_vars WHERE app_id IS ?", arguments: [appID])
            try db.audit(caller, app: scope.appName, detail: "cleared all config")
        }
    }

    /// The scope's own vars, sorted by key (globals are not merged in: these are
    /// what `config:show` prints and `config:export` round-trips).
    public func vars(_ scope: ConfigScope) throws -> [(key: EnvKey, value: String)] {
        try store.read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM config_vars WHERE app_id IS ? ORDER BY key",
                             arguments: [try appID(scope, db)])
                .map { (EnvKey(uncheckedRawValue: $0["key"]), $0["value"]) }
        }
    }

    public func get(_ key: EnvKey, in scope: ConfigScope) throws -> String? {
        try store.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM config_vars WHERE app_id IS ? AND key = ?",
                                arguments: [try appID(scope, db), key])
        }
    }

    /// The environment a container of the app gets: globals, overridden by the app's own.
    /// The same, as the name -> value map a container's environment is made from.
    public func environmentVariables(of app: AppName) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try environment(of: app).map { ($0.key.rawValue, $0.value) })
    }

    public func environment(of app: AppName) throws -> [(key: EnvKey, value: String)] {
        var merged: [String: String] = [:]
        for (key, value) in try vars(.global) { merged[key.rawValue] = value }
        for (key, value) in try vars(.app(app)) { merged[key.rawValue] = value }
        return merged.sorted { $0.key < $1.key }.map { (EnvKey(uncheckedRawValue: $0.key), $0.value) }
    }

    private func appID(_ scope: ConfigScope, _ db: Database) throws -> Int64? {
        guard case .app(let name) = scope else { return nil }
        return try AppService.id(of: name, db)
    }
}

extension ConfigScope {
    var appName: String? {
        if case .app(let name) = self { return name.rawValue }
        return nil
    }
}

/// What `config:import` reads from stdin: an env file (Dokku's and dotenv's
/// `KEY=VALUE` lines) or a JSON object of strings. Nothing is expanded or run:
/// `$NAME` and `$(...)` stay text.
public enum ConfigImport {
    public enum Format: String, Sendable, CaseIterable { case envfile, json }

    /// The pairs, in input order (a later line for the same key wins). `format` nil:
    /// JSON when the text starts with `{`, else an env file.
    public static func parse(_ text: String, format: Format?) throws -> [(EnvKey, String)] {
        let isJSON = format.map { $0 == .json } ?? text.drop { $0.isWhitespace }.hasPrefix("{")
        let pairs = try isJSON ? json(text) : envfile(text)
        guard !pairs.isEmpty else {
            throw UserFacingError.invalid("No config vars to set: standard input held no KEY=VALUE line; pipe an env file, e.g. config:import web < .env")
        }
        for (key, value) in pairs where value.unicodeScalars.contains("\0") {
            throw UserFacingError.invalid("the value of \(key) contains a NUL byte, which no environment can hold")
        }
        var seen: [String: Int] = [:]
        var unique: [(EnvKey, String)] = []
        for (key, value) in pairs {
            if let index = seen[key.rawValue] { unique[index].1 = value } else { seen[key.rawValue] = unique.count; unique.append((key, value)) }
        }
        return unique
    }

    private static func json(_ text: String) throws -> [(EnvKey, String)] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw UserFacingError.invalid("standard input is not a JSON object of \"KEY\": \"value\" pairs (--format json)")
        }
        return try object.keys.sorted().map { name in
            guard let value = object[name] as? String else {
                throw UserFacingError.invalid("the value of \(quoted(name)) is not a JSON string; write it in quotes")
            }
            return (try EnvKey(name), value)
        }
    }

    /// `KEY=VALUE` per line, optionally after `export `; blank lines and `#` lines are
    /// skipped. A value is either unquoted (the rest of the line, cut at ` #`, trimmed)
    /// or quoted as a shell word: `'...'` literal, `"..."` with `\n`, `\r`, `\t` and
    /// backslash escapes (what `config:export --format envfile` writes), and `\'`
    /// between quoted parts (what `--format exports` writes); quotes may span lines.
    private static func envfile(_ text: String) throws -> [(EnvKey, String)] {
        var pairs: [(EnvKey, String)] = []
        let scalars = Array(text.unicodeScalars)
        var index = 0
        var line = 1
        func isBlank(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" }
        func skipBlanks() { while index < scalars.count, isBlank(scalars[index]) { index += 1 } }
        func restOfLine() -> String {
            var out = String.UnicodeScalarView()
            while index < scalars.count, scalars[index] != "\n" { out.append(scalars[index]); index += 1 }
            return String(out)
        }
        func fail(_ what: String) -> UserFacingError {
            .invalid("standard input line \(line): \(what); write KEY=VALUE lines, quoting a value with spaces: KEY=\"a value\"")
        }
        while index < scalars.count {
            skipBlanks()
            if index == scalars.count { break }
            if scalars[index] == "\n" || scalars[index] == "\r" { if scalars[index] == "\n" { line += 1 }; index += 1; continue }
            if scalars[index] == "#" { _ = restOfLine(); continue }
            var name = String.UnicodeScalarView()
            while index < scalars.count, scalars[index] != "=", scalars[index] != "\n", !isBlank(scalars[index]) {
                name.append(scalars[index]); index += 1
            }
            if String(name) == "export" { skipBlanks(); continue }
            skipBlanks()
            guard index < scalars.count, scalars[index] == "=" else { throw fail("\(quoted(String(name))) is not KEY=VALUE") }
            index += 1
            let key: EnvKey
            do { key = try EnvKey(String(name)) } catch { throw fail("\(quoted(String(name))) is not a valid key (letters, digits and '_')") }
            skipBlanks()
            var value = String.UnicodeScalarView()
            if index < scalars.count, scalars[index] == "'" || scalars[index] == "\"" {
                let startLine = line
                while index < scalars.count, !isBlank(scalars[index]), scalars[index] != "\n", scalars[index] != "\r" {
                    let c = scalars[index]
                    index += 1
                    switch c {
                    case "'":
                        while index < scalars.count, scalars[index] != "'" {
                            if scalars[index] == "\n" { line += 1 }
                            value.append(scalars[index]); index += 1
                        }
                        guard index < scalars.count else { line = startLine; throw fail("the value of \(key) has no closing '") }
                        index += 1
                    case "\"":
                        while index < scalars.count, scalars[index] != "\"" {
                            var d = scalars[index]
                            if d == "\n" { line += 1 }
                            if d == "\\", index + 1 < scalars.count {
                                index += 1
                                d = scalars[index]
                                switch d {
                                case "n": d = "\n"
                                case "r": d = "\r"
                                case "t": d = "\t"
                                default: break
                                }
                            }
                            value.append(d); index += 1
                        }
                        guard index < scalars.count else { line = startLine; throw fail("the value of \(key) has no closing \"") }
                        index += 1
                    case "\\":
                        guard index < scalars.count else { break }
                        value.append(scalars[index]); index += 1
                    default:
                        value.append(c)
                    }
                }
                let rest = restOfLine().trimmingCharacters(in: .whitespacesAndNewlines)
                guard rest.isEmpty || rest.hasPrefix("#") else { throw fail("unexpected \(quoted(rest)) after the quoted value of \(key)") }
            } else {
                var rest = restOfLine()
                if rest.hasPrefix("#") { rest = "" }
                if let comment = rest.range(of: " #") ?? rest.range(of: "\t#") { rest = String(rest[..<comment.lowerBound]) }
                value = rest.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars
            }
            pairs.append((key, String(value)))
        }
        return pairs
    }
}
