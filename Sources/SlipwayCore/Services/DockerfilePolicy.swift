import Foundation

/// What a tenant's Dockerfile may ask of the engine. Build steps run inside the
/// engine's builder, which on podman 4.3 is root on the host and takes no user
/// namespace through the API (see SECURITY in slipway(8)); so anything in a
/// Dockerfile that reaches outside the build's own filesystem and network is
/// refused before the build starts:
/// - `RUN` flags (`--mount` of another stage, a cache or a secret; `--network`):
///   a bind mount of a symlink made in another stage reads and writes the host
///   (CVE-2024-1753), and cache mounts are shared by every tenant;
/// - `ADD <url>`: the engine fetches it from the host's own network namespace,
///   where 127.0.0.1 is the host;
/// - `FROM` / `COPY --from` naming another app's image, an image by id, or a
///   name only a variable without a value decides;
/// - `ONBUILD` triggers that would do any of that (in the file, or in a local
///   base image).
public struct DockerfilePolicy: Sendable {
    /// The app being built: its own images are fair game.
    public let app: AppName
    /// The builder image and its app base, which every app may start from.
    public let sharedImages: Set<String>
    /// The images this app's own builds made (`slipway/<app>:<rev>`): only these of
    /// its name count as its own.
    public let ownImages: Set<String>

    public init(app: AppName, sharedImages: Set<String>, ownImages: Set<String> = []) {
        self.app = app
        self.sharedImages = sharedImages
        self.ownImages = Set(ownImages.map(Self.normalized))
    }

    private func isOwn(_ name: String) -> Bool { ownImages.contains(name) }

    /// One instruction, its continuation lines joined.
    public struct Instruction: Sendable, Equatable {
        public let line: Int
        public let keyword: String
        public let arguments: String
    }

    /// The image references the file builds from (FROM and COPY --from that are not
    /// stages), after `ARG` expansion, for `check(image:)`. Throws on anything refused.
    public func vet(_ dockerfile: String, buildArgs: [String: String]) throws -> [String] {
        var state = State(buildArgs: buildArgs)
        for instruction in Self.instructions(dockerfile) { try vet(instruction, &state) }
        return state.images
    }

    /// What the instructions so far have declared.
    private struct State {
        /// The values the build passes (the app's config, for declared ARGs).
        let buildArgs: [String: String]
        /// ARGs declared before the first FROM, the only ones a FROM line sees.
        var arguments: [String: String] = [:]
        /// Stage names and indexes (`FROM x AS name`, `COPY --from=0`), lowercased.
        var stages: Set<String> = []
        var stageCount = 0
        var images: [String] = []
        var sawFrom: Bool { stageCount > 0 }
    }

    private func vet(_ instruction: Instruction, _ state: inout State) throws {
        let (flags, rest) = Self.flags(instruction.arguments)
        func refuse(_ why: String) -> UserFacingError {
            UserFacingError.invalid("Dockerfile line \(instruction.line): \(why)")
        }
        switch instruction.keyword {
        case "ARG" where !state.sawFrom:
            // Only ARGs before the first FROM can name the FROM image.
            for word in Self.words(rest) {
                let pair = word.split(separator: "=", maxSplits: 1).map(String.init)
                state.arguments[pair[0]] = state.buildArgs[pair[0]] ?? (pair.count == 2 ? Self.unquote(pair[1]) : "")
            }
        case "FROM":
            let words = rest.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let first = words.first else { throw refuse("FROM names no image") }
            let image = try expand(first, state.arguments, refuse)
            if !state.stages.contains(image.lowercased()) && image != "scratch" {
                try checkName(image, refuse)
                state.images.append(image)
            }
            if words.count >= 3, words[1].uppercased() == "AS" { state.stages.insert(words[2].lowercased()) }
            state.stages.insert(String(state.stageCount))
            state.stageCount += 1
        case "RUN":
            if let flag = flags.first {
                if flag.hasPrefix("--mount") && flag.contains("type=cache") {
                    // A cache mount lives in the engine's builder, shared by every tenant's
                    // builds; it cannot be namespaced per app on podman's builder nor on
                    // Docker's classic one (only BuildKit has cache ids, and Slipway does
                    // not use it).
                    throw refuse("RUN --mount=type=cache is not allowed on this server: the engine's build cache would be shared with other apps' builds. Keep slow steps cached as layers instead: COPY the dependency files alone, RUN the install, then COPY the code (a two-stage Dockerfile keeps build tools out of the image); or drop the Dockerfile and let Slipway install requirements.txt or package.json with a per-app cache")
                }
                throw refuse("RUN \(flag.split(separator: "=").first ?? "") is not allowed on this server: build steps may not mount other stages, caches or secrets, nor choose their network; COPY what a step needs instead")
            }
        case "ADD", "COPY":
            for flag in flags where flag.hasPrefix("--from=") {
                // Stage ARGs and ENV could give a variable another value in the engine than here.
                if flag.contains("$") { throw refuse("\(flag): a variable in --from is not allowed on this server; name the stage or image") }
                let source = String(flag.dropFirst("--from=".count))
                if !state.stages.contains(source.lowercased()) {
                    try checkName(source, refuse)
                    state.images.append(source)
                }
            }
            if instruction.keyword == "ADD" {
                let sources = Self.words(rest).dropLast()
                if let variable = sources.first(where: { $0.contains("$") }) {
                    throw refuse("ADD \(variable): a variable in ADD's source is not allowed on this server (it could name a URL); use COPY for files of the repository")
                }
                if let remote = sources.first(where: { $0.contains("://") || $0.hasPrefix("git@") }) {
                    throw refuse("ADD \(remote) is not allowed on this server: the engine would fetch it from the host's network; download it in a RUN step (curl, wget) instead")
                }
            }
        case "ONBUILD":
            let inner = Self.instructions(rest).map { Instruction(line: instruction.line, keyword: $0.keyword, arguments: $0.arguments) }
            for trigger in inner {
                var scratch = state  // a trigger runs in a later build: checked, not counted here
                try vet(trigger, &scratch)
            }
        default:
            break
        }
    }

    /// Refuses another app's image, an image id and the engine's raw names.
    private func checkName(_ image: String, _ refuse: (String) -> UserFacingError) throws {
        let name = Self.normalized(image)
        if name.range(of: "^(sha256:)?[0-9a-f]{12,64}$", options: .regularExpression) != nil {
            throw refuse("FROM \(image): images by id are not allowed on this server; name the image")
        }
        let bare = name.split(separator: "@").first.map(String.init) ?? name
        if name.hasPrefix("slipway/") && !sharedImages.contains(where: { Self.normalized($0) == bare }) && !isOwn(bare) {
            throw refuse("\(image) is not an image this app may build from: apps build only from their own images, public ones and the builder")
        }
    }

    /// The image itself, once the engine has it: its tags must not be another app's,
    /// and its ONBUILD triggers pass the same rules.
    public func check(image reference: String, info: ImageInfo) throws {
        let shared = Set(sharedImages.map(Self.normalized))
        let foreign = info.tags.map(Self.normalized).filter {
            $0.hasPrefix("slipway/") && !shared.contains($0) && !isOwn($0)
        }
        // An image without a name is a leftover of some build, perhaps another app's.
        if !foreign.isEmpty || info.tags.isEmpty {
            throw UserFacingError.invalid("\(reference) is not an image this app may build from: apps build only from their own images, public ones and the builder")
        }
        let triggers = info.onBuild.joined(separator: "\n")
        if !triggers.isEmpty {
            do { _ = try vet(triggers.split(separator: "\n").map { "ONBUILD " + $0 }.joined(separator: "\n"), buildArgs: [:]) } catch let error as UserFacingError {
                throw UserFacingError.invalid("the ONBUILD triggers of \(reference) are refused: \(error.message)")
            }
        }
    }

    // MARK: Parsing

    /// The text both this policy and the engine read: Slipway builds from its own
    /// copy of the vetted file (never the repository's, which a symlink or a
    /// `.gitattributes` filter could change). CR LF line ends become LF and a
    /// leading byte-order mark goes; any other control character or non-ASCII space
    /// is refused, as parsers disagree on them (a form feed after RUN, a U+3000
    /// after a line's escape character).
    public static func normalizedText(_ text: String) throws -> String {
        var text = text.replacingOccurrences(of: "\r\n", with: "\n")
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        if let bad = text.unicodeScalars.first(where: { scalar in
            (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || scalar.value == 0x7F || scalar == "\u{FEFF}"
                || (scalar.value > 0x7F && scalar.properties.isWhitespace)
        }) {
            throw UserFacingError.invalid("the Dockerfile contains the character U+\(String(format: "%04X", bad.value)), which builders read differently; remove it (line ends may be LF or CR LF)")
        }
        return text
    }

    /// The file's instructions as the engine's parser sees them: parser directives
    /// only in the leading run of `# key=value` lines, comment and blank lines
    /// dropped (inside a continuation too), continuation lines (the escape
    /// character at a line's end) joined as they are, with nothing added between;
    /// only spaces and tabs separate words.
    /// Expects `normalizedText` text.
    public static func instructions(_ text: String) -> [Instruction] {
        var escape: Character = "\\"
        var result: [Instruction] = []
        var pending = "", pendingLine = 0
        var directives = true
        let blanks: Set<Character> = [" ", "\t"]
        func trimEnd(_ text: Substring) -> Substring { text[..<(text.lastIndex { !blanks.contains($0) }.map(text.index(after:)) ?? text.startIndex)] }
        func trim(_ text: Substring) -> Substring { trimEnd(text.drop(while: blanks.contains)) }
        func finish() {
            let trimmed = trim(Substring(pending))
            pending = ""
            guard !trimmed.isEmpty else { return }
            let keyword = trimmed.prefix(while: { !blanks.contains($0) })
            result.append(Instruction(line: pendingLine, keyword: keyword.uppercased(),
                                      arguments: String(trim(trimmed.dropFirst(keyword.count)))))
        }
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = trim(raw)
            if directives {
                if let match = line.firstMatch(of: /^#[ \t]*([A-Za-z][A-Za-z0-9]*)[ \t]*=[ \t]*(.*)$/) {
                    if match.1.lowercased() == "escape", let value = match.2.first { escape = value }
                    continue
                }
                directives = false
            }
            if line.hasPrefix("#") || line.isEmpty { continue }
            if pending.isEmpty { pendingLine = offset + 1 }
            // As the engine's parser: a continuation line keeps its leading blanks, and
            // the lines are joined with nothing between them (`RUN -\` then `-mount=…`
            // is `RUN --mount=…` to the engine; `RU\` then `N …` is RUN).
            let content = pending.isEmpty ? line : trimEnd(raw)
            if content.last == escape {
                pending += content.dropLast()
                continue
            }
            pending += content
            finish()
        }
        finish()
        return result
    }

    /// Leading `--flag[=value]` words, and what follows them.
    static func flags(_ arguments: String) -> (flags: [String], rest: String) {
        var flags: [String] = []
        var rest = Substring(arguments)
        while rest.hasPrefix("--") {
            let word = rest.prefix(while: { $0 != " " && $0 != "\t" })
            flags.append(String(word))
            rest = rest.dropFirst(word.count).drop(while: { $0 == " " || $0 == "\t" })
        }
        return (flags, String(rest))
    }

    /// The words of an instruction's arguments, in JSON form or not.
    static func words(_ arguments: String) -> [String] {
        if arguments.hasPrefix("["), let list = try? JSONDecoder().decode([String].self, from: Data(arguments.utf8)) { return list }
        return arguments.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// `$NAME`, `${NAME}` and `${NAME:-default}` replaced by the ARGs declared before
    /// the first FROM (the only ones FROM sees); any other name or form is refused,
    /// as the engine may know a value this policy does not (TARGETARCH, ...).
    private func expand(_ word: String, _ arguments: [String: String], _ refuse: (String) -> UserFacingError) throws -> String {
        var result = ""
        var rest = Substring(word)
        func isName(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_") }
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            var name: String, fallback: String?
            if rest.hasPrefix("{"), let close = rest.firstIndex(of: "}") {
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
                if let range = inside.range(of: ":-") {
                    name = String(inside[..<range.lowerBound]); fallback = String(inside[range.upperBound...])
                } else {
                    name = String(inside)
                }
            } else {
                name = String(rest.prefix(while: isName))
                rest = rest.dropFirst(name.count)
            }
            guard !name.isEmpty, name.allSatisfy(isName), !(fallback ?? "").contains("$") else {
                throw refuse("\(word): only $NAME, ${NAME} and ${NAME:-default} are allowed here")
            }
            guard let declared = arguments[name] else {
                throw refuse("\(word) depends on $\(name), which no ARG before the first FROM declares; declare it there with a default")
            }
            guard let value = declared.isEmpty ? fallback : declared, !value.isEmpty else {
                throw refuse("\(word) depends on $\(name), which has no value; give the ARG a default")
            }
            result += value
        }
        return result + rest
    }

    static func normalized(_ image: String) -> String {
        var name = image.lowercased()
        for prefix in ["localhost/", "docker.io/library/", "docker.io/"] where name.hasPrefix(prefix) {
            name.removeFirst(prefix.count)
        }
        return name
    }

    private static func unquote(_ value: String) -> String {
        value.count >= 2 && (value.first == "\"" || value.first == "'") && value.last == value.first ? String(value.dropFirst().dropLast()) : value
    }
}
