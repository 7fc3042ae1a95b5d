import Crypto
import Foundation
import TOMLKit

/// What a Procfile app (no Dockerfile) needs installed, read from its dependency
/// files in the pushed revision:
/// - Python: `requirements.txt`, or else a `pyproject.toml` with a `[project]` table
///   (its `dependencies` are installed, not the project itself: the code is in /app);
///   a venv at /app/.venv, `pip install -r`.
/// - Node: `package.json` (+ `package-lock.json`: `npm ci`, else `npm install`; all
///   dependencies, dev ones too, as `scripts.build` usually needs them), node_modules
///   at /app/node_modules; `scripts.build` runs as a Dockerfile step after the code.
/// - Both: refused (one language per app; a Dockerfile can do both).
/// The install runs in an ephemeral container of the app's sandbox (`DependencyInstaller`).
public struct DependencyPlan: Sendable, Equatable {
    public enum Language: String, Sendable, Codable { case python, node }

    public let language: Language
    /// The repository's files the plan was read from, as the first build line names them.
    public let sources: [String]
    /// The files the install container sees in /app, by name, and their bytes.
    public let files: [String: Data]
    /// The install's folder under /app, copied into the image.
    public var installDirectory: String { language == .python ? ".venv" : "node_modules" }
    /// Node: `scripts.build` exists.
    public let runsBuildScript: Bool
    /// `runtime.txt` / `.python-version` (Python) or `engines.node` (Node), as written.
    public let requestedVersion: (file: String, text: String)?

    public static func == (a: Self, b: Self) -> Bool {
        a.language == b.language && a.sources == b.sources && a.files == b.files && a.runsBuildScript == b.runsBuildScript
            && a.requestedVersion?.file == b.requestedVersion?.file && a.requestedVersion?.text == b.requestedVersion?.text
    }

    /// The most one dependency file may hold (a lock file of a large app is a few MB).
    public static let maxFileBytes = 8 << 20

    /// The first build line: `-----> Python app (requirements.txt)`.
    public var headline: String { "-----> \(language == .python ? "Python" : "Node.js") app (\(sources.joined(separator: ", ")))" }

    /// The shell script the install container runs (fixed text: no tenant value is
    /// spliced in; they reach it as files and environment only).
    public var installScript: String {
        switch language {
        case .python:
            return "set -e; python3 -m venv /app/.venv; exec /app/.venv/bin/pip install --disable-pip-version-check --no-input --progress-bar off -r /app/requirements.txt"
        case .node:
            let command = files["package-lock.json"] == nil ? "install" : "ci"
            return "set -e; exec npm \(command) --no-audit --no-fund --no-update-notifier"
        }
    }

    /// The tool whose exit the build reports.
    public var installer: String { language == .python ? "pip" : "npm" }

    /// The install's key: its files, the language, and the base image it runs on.
    /// Same key, same install: it is reused without running anything.
    public func key(baseImageID: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Data("slipway-deps-1\n\(language.rawValue)\n\(baseImageID)\n".utf8))
        for name in files.keys.sorted() {
            hasher.update(data: Data("\(name)\n\(files[name]!.count)\n".utf8))
            hasher.update(data: files[name]!)
        }
        return hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Reads the plan from the revision's files (`read` gives a top-level file's bytes,
    /// nil when it is absent, and throws for a symbolic link or a file too large).
    /// nil: no language detected (the code alone, on the builder).
    public static func detect(_ read: (String) throws -> Data?) throws -> DependencyPlan? {
        let requirements = try read("requirements.txt")
        let pyproject = try requirements == nil ? read("pyproject.toml") : nil
        let packageJSON = try read("package.json")
        var python: (sources: [String], requirements: Data)?
        if let requirements {
            python = (["requirements.txt"], requirements)
        } else if let pyproject, let dependencies = try projectDependencies(pyproject) {
            python = (["pyproject.toml"], Data(dependencies.map { $0 + "\n" }.joined().utf8))
        }
        if python != nil && packageJSON != nil {
            throw UserFacingError.invalid("the app has both \(python!.sources[0]) and package.json; Slipway installs one language per app without a Dockerfile: remove one, or build with a Dockerfile (a two-stage one can install both)")
        }
        if let python {
            var requested: (String, String)?
            for file in ["runtime.txt", ".python-version"] {
                if let data = try read(file) {
                    requested = (file, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                    break
                }
            }
            return DependencyPlan(language: .python, sources: python.sources, files: ["requirements.txt": python.requirements],
                                  runsBuildScript: false, requestedVersion: requested)
        }
        guard let packageJSON else { return nil }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: packageJSON) } catch {
            throw UserFacingError.invalid("package.json is not valid JSON (\(firstLine(error))); fix it and push again")
        }
        guard let package = object as? [String: Any] else {
            throw UserFacingError.invalid("package.json must hold a JSON object; fix it and push again")
        }
        var files = ["package.json": packageJSON]
        var sources = ["package.json"]
        if let lock = try read("package-lock.json") {
            files["package-lock.json"] = lock
            sources.append("package-lock.json")
        }
        let engines = package["engines"] as? [String: Any]
        let requested = (engines?["node"] as? String).map { ("package.json engines.node", $0) }
        let build = (package["scripts"] as? [String: Any])?["build"] != nil
        return DependencyPlan(language: .node, sources: sources, files: files, runsBuildScript: build, requestedVersion: requested)
    }

    /// `[project] dependencies` of a pyproject.toml; nil without a `[project]` table.
    static func projectDependencies(_ data: Data) throws -> [String]? {
        let table: TOMLTable
        do { table = try TOMLTable(string: String(decoding: data, as: UTF8.self)) } catch {
            throw UserFacingError.invalid("pyproject.toml is not valid TOML (\(firstLine(error))); fix it and push again")
        }
        guard let project = table["project"]?.table else { return nil }
        guard let list = project["dependencies"] else { return [] }
        guard let array = list.array, let items = Optional(array.compactMap(\.string)), items.count == array.count else {
            throw UserFacingError.invalid("pyproject.toml: [project] dependencies must be a list of requirement strings")
        }
        // One requirement per line: a newline inside one would add a pip option line.
        if items.contains(where: { $0.contains(where: \.isNewline) }) {
            throw UserFacingError.invalid("pyproject.toml: a [project] dependency contains a line break; write one requirement per string")
        }
        return items
    }

    /// Refuses a version the builder does not carry, naming the ones it has.
    public func check(against builder: BuilderLanguages, image: String) throws {
        guard let have = builder.versions[language == .python ? "python" : "node"] else {
            let name = language == .python ? "Python" : "Node.js"
            throw UserFacingError(.unavailable, "the builder image \(image) carries no \(name) (it was made before Slipway installed dependencies); an admin must run builder:bootstrap again")
        }
        guard let (file, text) = requestedVersion else { return }
        switch language {
        case .python:
            var wanted = text
            if file == "runtime.txt" {
                guard wanted.hasPrefix("python-") else {
                    throw UserFacingError.invalid("runtime.txt says \(quoted(text)); write python-\(have) (the builder carries Python \(have))")
                }
                wanted.removeFirst("python-".count)
            }
            let parts = wanted.split(separator: ".", omittingEmptySubsequences: false)
            guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }) else {
                throw UserFacingError.invalid("\(file) says \(quoted(text)), which is not a Python version; write \(file == "runtime.txt" ? "python-" : "")\(have) (the builder carries Python \(have))")
            }
            let carried = have.split(separator: ".")
            guard Array(carried.prefix(parts.count)) == parts else {
                throw UserFacingError.invalid("\(file) asks for Python \(wanted), but the builder carries Python \(have) only; ask for \(have) (or remove \(file)), or build with a Dockerfile")
            }
        case .node:
            let range = try SemverRange(text)
            guard range.contains(have) else {
                throw UserFacingError.invalid("package.json engines.node asks for \(quoted(text)), but the builder carries Node.js \(have) only; widen the range, or build with a Dockerfile")
            }
        }
    }

    private static func firstLine(_ error: Error) -> String {
        let text = (error as? UserFacingError)?.message ?? "\(error)"
        return String(text.split(separator: "\n").first ?? "").prefix(200).description
    }
}

/// The languages and versions a builder image carries, from its
/// `org.slipway.languages` label (`python=3.11.2,node=18.19.0,npm=9.2.0`), which
/// `builder:bootstrap` writes from the packages it installed.
public struct BuilderLanguages: Sendable, Equatable, Codable {
    public static let label = "org.slipway.languages"
    public var versions: [String: String]

    public init(versions: [String: String]) { self.versions = versions }

    public init(labels: [String: String]) {
        var versions: [String: String] = [:]
        for pair in (labels[Self.label] ?? "").split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { versions[kv[0]] = kv[1] }
        }
        self.versions = versions
    }

    public var labelValue: String { versions.keys.sorted().map { "\($0)=\(versions[$0]!)" }.joined(separator: ",") }

    /// Upstream versions from a Debian root filesystem's dpkg status
    /// (`3.11.2-1+b1` → `3.11.2`, `18.19.0+dfsg-6~deb12u2` → `18.19.0`).
    public static func fromDpkgStatus(_ text: String) -> BuilderLanguages {
        let wanted = ["python3": "python", "nodejs": "node", "npm": "npm"]
        var versions: [String: String] = [:]
        for stanza in text.components(separatedBy: "\n\n") {
            var package: String?, version: String?, installed = false
            for line in stanza.split(separator: "\n") {
                if line.hasPrefix("Package: ") { package = String(line.dropFirst(9)) }
                if line.hasPrefix("Version: ") { version = String(line.dropFirst(9)) }
                if line.hasPrefix("Status: ") && line.hasSuffix(" installed") { installed = true }
            }
            guard let package, let key = wanted[package], var version, installed else { continue }
            if let colon = version.firstIndex(of: ":") { version = String(version[version.index(after: colon)...]) }
            let upstream = version.prefix { $0.isNumber || $0 == "." }
            if !upstream.isEmpty { versions[key] = String(upstream) }
        }
        return BuilderLanguages(versions: versions)
    }
}
