import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// The builder image, made once per test run with the real `builder:bootstrap`.
enum BuilderImage {
    static let reference = "slipway/builder:bookworm"
    /// The bootstrap's output, for the test that checks it, and the ids of the builder
    /// image and its app base that it replaced (none on a fresh engine).
    static let bootstrap: Result<Slipway.Result, Error> = Result {
        replaced.set([reference, BuilderService.appBase(of: reference)].compactMap(imageID))
        let slipway = try Slipway()
        return try slipway("builder:bootstrap")
    }
    static let replaced = Replaced()

    final class Replaced: @unchecked Sendable {
        private let lock = NSLock()
        private var ids: [String] = []
        func set(_ value: [String]) { lock.withLock { ids = value } }
        var all: [String] { lock.withLock { ids } }
    }

    /// The engine's id of an image, or nil when it has none by that name.
    static func imageID(_ reference: String) -> String? {
        let answer = try? run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/images/\(reference)/json"])
        let object = answer.flatMap { try? JSONSerialization.jsonObject(with: Data($0.out.utf8)) as? [String: Any] }
        return object?["Id"] as? String
    }
}

/// The engine client against the real container engine (podman's API here).
@Suite("Container engine end to end", .serialized)
struct EngineTests {
    let engine = DockerEngine.locate(configured: nil)

    @Test func builderBootstrapImportsAUsableImage() async throws {
        let result = try BuilderImage.bootstrap.get()
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out.contains("Builder image \(BuilderImage.reference) ready"))
        let slipway = try Slipway()
        let report = try JSONSerialization.jsonObject(with: Data(try slipway("builder:report", "--format", "json").out.utf8)) as? [String: Any]
        #expect(report?["present"] as? Bool == true)
        #expect(report?["image"] as? String == BuilderImage.reference)
        let info = try await engine.inspectImage(BuilderImage.reference)
        #expect(info?.labels["org.slipway.builder"] == "debian-bookworm")
        #expect(info?.user == "", "Dockerfiles FROM the builder start as root")
        // Procfile apps build on its app base: the same files, working in /app as app.
        let base = try await engine.inspectImage(BuilderService.appBase(of: BuilderImage.reference))
        #expect(base?.user == "app" && base?.workingDirectory == "/app")
        // The images it replaced are gone, not left behind nameless (the suite's own
        // apps built on them were removed with their tests).
        for id in BuilderImage.replaced.all {
            #expect(try await engine.inspectImage(id) == nil, "the replaced image \(id) is still there")
        }
    }

    /// An import leaves no copy of its tarball behind: podman's compatible /images/create
    /// keeps one in its temporary folder for good (api_load.tar*), which had filled a test
    /// host's disk with builder roots. Looked for by size, whatever its name, where podman
    /// and Go put temporary files. Each `changes` instruction is applied.
    @Test func anImportLeavesNoCopyOfItsTarballBehind() async throws {
        let scratch = try temporaryDirectory("slipway-import")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // A size no other file there is likely to have: random padding, uncompressed.
        try FileManager.default.createDirectory(atPath: scratch + "/root", withIntermediateDirectories: false)
        try Data((0..<(300_000 + Int.random(in: 0..<100_000))).map { _ in UInt8.random(in: 0...255) })
            .write(to: URL(fileURLWithPath: scratch + "/root/padding"))
        let tarball = scratch + "/rootfs.tar"
        #expect(try run("/bin/tar", ["-C", scratch + "/root", "-cf", tarball, "."]).status == 0)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: tarball)[.size] as? NSNumber).int64Value
        let reference = "slipway-test/import-\(UUID().uuidString.prefix(8).lowercased()):1"
        try await engine.importImage(fromTarFile: tarball, reference: reference, changes: ["LABEL org.slipway.test=one", "LABEL org.slipway.other=two"])
        let info = try await engine.inspectImage(reference)
        try? await engine.removeImage(reference)
        #expect(info?.labels["org.slipway.test"] == "one" && info?.labels["org.slipway.other"] == "two", "\(String(describing: info))")
        var copies: [String] = []
        for folder in ["/var/tmp", "/tmp"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                let attributes = try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)
                if attributes?[.type] as? FileAttributeType == .typeRegular, (attributes?[.size] as? NSNumber)?.int64Value == size {
                    copies.append(folder + "/" + name)
                }
            }
        }
        #expect(copies.isEmpty, "copies of the imported tarball left behind: \(copies)")
    }

    @Test func aContainersWholeLife() async throws {
        _ = try BuilderImage.bootstrap.get()
        let version = try await engine.version()
        #expect(version.apiVersion.hasPrefix("1.") || version.kind == "podman")
        let storage = try temporaryDirectory("slipway-bind")
        let label = UUID().uuidString
        var spec = ContainerSpec(image: BuilderImage.reference, command: ["/bin/sh", "-c", "echo out; echo err >&2; echo \"$GREETING\" > /data/f; touch /scratch.txt; python3 -c 'print(6*7)'; exit 7"])
        spec.environment = ["GREETING": "hello 'quoted' world"]
        spec.labels = ["org.slipway.test": label]
        spec.binds = ["\(storage):/data"]
        spec.networkDisabled = true
        let id = try await engine.createContainer(spec)
        try await engine.startContainer(id)
        let status = try await engine.waitContainer(id)
        #expect(status == 7)

        let collected = Collected()
        try await engine.streamLogs(id, follow: false, tail: nil) { collected.add($0) }
        #expect(collected.text(.stdout) == "out\n42\n")
        #expect(collected.text(.stderr) == "err\n")
        #expect(try String(contentsOfFile: storage + "/f", encoding: .utf8) == "hello 'quoted' world\n")

        let changes = try await engine.changes(id)
        #expect(changes.contains(FileChange(path: "/scratch.txt", kind: .added)))
        // The mount point itself may show as added; nothing written under it does.
        #expect(!changes.contains { $0.path.hasPrefix("/data/") })

        let listed = try await engine.listContainers(labels: ["org.slipway.test": label])
        #expect(listed.map(\.id) == [id])
        try await engine.removeContainer(id, force: false)
        let afterRemoval = try await engine.listContainers(labels: ["org.slipway.test": label])
        #expect(afterRemoval.isEmpty)
        let missing = try await engine.inspectImage("slipway/no-such-image:\(label.lowercased())")
        #expect(missing == nil)
    }

    @Test func aStoppedEngineGivesAClearMessageAndOtherCommandsWork() async throws {
        let slipway = try Slipway()
        let config = slipway.dataDir + "/slipway.toml"
        try "engine_socket = \"/run/slipway-test-no-engine.sock\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let report = try slipway(["--config", config, "builder:report"])
        #expect(report.status == 1)
        #expect(report.err.hasPrefix("error: the container engine at /run/slipway-test-no-engine.sock is not answering (")
                && report.err.hasSuffix("); start it (scripts/engine.sh starts podman's API service) or set engine_socket in the config\n")
                && report.err.filter { $0 == "\n" }.count == 1, "\(report.err)")
        #expect(try slipway(["--config", config, "apps:create", "web"]).status == 0)
        #expect(try slipway(["--config", config, "apps:list"]).out.contains("web"))
    }
}

/// Output chunks gathered from a stream, by stream.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [OutputChunk] = []
    func add(_ chunk: OutputChunk) { lock.withLock { chunks.append(chunk) } }
    func text(_ stream: OutputChunk.Stream) -> String {
        lock.withLock { String(decoding: chunks.filter { $0.stream == stream }.flatMap(\.data), as: UTF8.self) }
    }
}
