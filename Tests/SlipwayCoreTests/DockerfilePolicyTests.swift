import Foundation
import SlipwayCore
import Testing

/// What a tenant's Dockerfile may ask of the builder (the end-to-end attacks are in
/// IsolationAttackTests; these pin the parsing an attacker would try to slip past).
struct DockerfilePolicyTests {
    let policy = DockerfilePolicy(app: try! AppName("web"), sharedImages: ["slipway/builder:bookworm", "slipway/builder:bookworm-app"],
                                  ownImages: ["slipway/web:0123456789ab"])

    /// The refusal, as BuildService applies the policy: to the normalized text.
    func refusal(_ dockerfile: String, args: [String: String] = [:]) -> String? {
        do { _ = try policy.vet(try DockerfilePolicy.normalizedText(dockerfile), buildArgs: args); return nil }
        catch let error as UserFacingError { return error.message } catch { return "\(error)" }
    }

    @Test func ordinaryDockerfilesPass() throws {
        let images = try policy.vet("""
            # syntax=docker/dockerfile:1
            ARG PY=3.12
            FROM python:${PY}-slim AS build
            RUN pip install --user flask && \\
                echo done
            COPY --chown=1000:1000 --from=build /root/.local /app/.local
            FROM slipway/builder:bookworm
            COPY --from=0 /app /app
            ADD app.tar.gz /srv/
            ONBUILD COPY . /app
            FROM slipway/web:0123456789ab
            """, buildArgs: [:])
        #expect(images == ["python:3.12-slim", "slipway/builder:bookworm", "slipway/web:0123456789ab"])
    }

    @Test func runFlagsAreRefusedHoweverWritten() {
        for dockerfile in [
            "FROM x\nRUN --mount=type=bind,from=base,source=/rootdir,target=/h ls /h\n",
            "FROM x\nrun --mount=type=cache,id=pip,target=/c true\n",
            "FROM x\nRUN \\\n  --mount=type=secret,id=s cat /run/secrets/s\n",
            "# escape=`\nFROM x\nRUN `\n --network=host curl 127.0.0.1\n",
            "FROM x\n# a comment between\nRUN --security=insecure true\n",
            "FROM x\nONBUILD RUN --mount=type=bind,source=/,target=/h true\n",
        ] {
            #expect(refusal(dockerfile)?.contains("is not allowed on this server") == true, "\(dockerfile)")
        }
    }

    /// Each a way the engine's parser and a naive one disagree, found in review.
    @Test func parserDisagreementsCannotHideAnInstruction() {
        let mount = "RUN --mount=type=cache,target=/c true"
        for (trick, dockerfile) in [
            ("CRLF line ends", "FROM x\r\n\(mount)\r\n"),
            ("a blank line inside a continuation", "FROM x\nRUN \\\n\n--mount=type=cache,target=/c true\n"),
            ("a comment inside a continuation", "FROM x\nRUN \\\n# hi\n--mount=type=cache,target=/c true\n"),
            ("a comment before the escape directive", "# hi\n# escape=`\nFROM x\nRUN echo `\n\(mount)\n"),
            ("a byte-order mark before the directive", "\u{FEFF}# escape=`\nFROM x\nRUN `\n --mount=type=cache,target=/c true\n"),
            ("a tab after the keyword", "FROM x\nRUN\t--mount=type=cache,target=/c true\n"),
            // The engine joins continued lines with nothing between them.
            ("a flag split across lines", "FROM x\nRUN -\\\n-mount=type=bind,target=/h true\n"),
            ("a flag split after its first dash, blanks after the escape", "FROM x\nRUN -\\  \n-network=host curl 127.0.0.1\n"),
            ("the keyword split across lines", "FROM x\nRU\\\nN --mount=type=cache,target=/c true\n"),
            ("a continuation line's leading blanks kept", "FROM x\nRUN\\\n  --mount=type=cache,target=/c true\n"),
        ] {
            #expect(refusal(dockerfile)?.contains("is not allowed on this server") == true, "\(trick)")
        }
        for (trick, dockerfile) in [
            ("a form feed after RUN", "FROM x\nRUN\u{0C}--mount=type=cache,target=/c true\n"),
            ("an ideographic space after the escape character", "FROM x\nRUN echo \\\u{3000}\n\(mount)\n"),
            ("a lone CR", "FROM x\rRUN --mount=type=cache,target=/c true\n"),
        ] {
            #expect(refusal(dockerfile)?.contains("which builders read differently") == true, "\(trick)")
        }
    }

    @Test func variablesCannotNameWhatTheCheckDidNotSee() {
        // FROM sees only ARGs declared before the first FROM; the engine's own (TARGETARCH) are unknown here.
        #expect(refusal("FROM alpine\nARG IMG\nFROM ${IMG:-slipway/victim:abc}\n", args: ["IMG": "alpine"]) != nil)
        #expect(refusal("FROM slipway/${TARGETARCH:-web}:0123456789ab\n") != nil)
        #expect(refusal("ARG V=x\nFROM ${V:+slipway/victim:abc}\n") != nil)
        #expect(refusal("ARG U=http://127.0.0.1:8080/x\nFROM x\nADD $U /x\n")?.contains("a variable in ADD's source") == true)
        #expect(refusal("FROM x\nARG S=slipway/victim:abc\nCOPY --from=${S} /app /app\n")?.contains("a variable in --from") == true)
        // An image under the app's own name that its builds did not make (left by a renamed app) is not its own.
        #expect(refusal("FROM slipway/web:fedcba987654\n") != nil)
    }

    @Test func remoteAddIsRefused() {
        for add in ["ADD http://127.0.0.1:8080/x /x", "ADD [\"https://example.com/a\", \"/a\"]", "ADD --chown=1 git@github.com:a/b.git /b",
                    "add HTTP://127.0.0.1/x /x"] {
            #expect(refusal("FROM x\n\(add)\n")?.contains("is not allowed on this server") == true, "\(add)")
        }
    }

    @Test func anotherAppsImagesAndImageIdsAreRefused() {
        for dockerfile in [
            "FROM slipway/victim:0123456789ab\n",
            "FROM localhost/slipway/victim:0123456789ab\n",
            "FROM docker.io/slipway/victim:abc\n",
            "FROM 4594209addda\n",
            "FROM sha256:4594209adddaa8c6d6d45547370e28536a87eaf7658f88ba79a594ab25987673\n",
            "FROM slipway/builder:bookworm\nCOPY --from=slipway/victim:abc /app /x\n",
            "ARG B=slipway/victim:abc\nFROM $B\n",
            "FROM slipway/webby:abc\n",
        ] {
            #expect(refusal(dockerfile) != nil, "\(dockerfile)")
        }
        // A build arg from the app's config cannot point FROM elsewhere either.
        #expect(refusal("ARG B\nFROM ${B}\n", args: ["B": "slipway/victim:abc"]) != nil)
        #expect(refusal("ARG B\nFROM ${B}\n")?.contains("has no value") == true)
    }

    @Test func localImagesAreCheckedByTheirNamesAndTriggers() throws {
        func image(tags: [String], onBuild: [String] = []) -> ImageInfo {
            var info = ImageInfo(id: "sha256:1", created: nil, size: 0, user: "", labels: [:])
            info.tags = tags
            info.onBuild = onBuild
            return info
        }
        try policy.check(image: "python:3.12", info: image(tags: ["docker.io/library/python:3.12"]))
        try policy.check(image: "slipway/web:0123456789ab", info: image(tags: ["localhost/slipway/web:0123456789ab"]))
        #expect(throws: UserFacingError.self) { try policy.check(image: "alias:1", info: image(tags: ["localhost/alias:1", "localhost/slipway/victim:abc"])) }
        #expect(throws: UserFacingError.self) { try policy.check(image: "dangling", info: image(tags: [])) }
        #expect(throws: UserFacingError.self) {
            try policy.check(image: "base:1", info: image(tags: ["localhost/base:1"], onBuild: ["RUN --mount=type=bind,source=/,target=/h true"]))
        }
    }
}
