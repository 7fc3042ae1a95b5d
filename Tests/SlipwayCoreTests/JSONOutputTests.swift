import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Every command that takes `--format json` prints one line of JSON: scripts written
/// for Dokku parse it line by line (`| jq`, `| while read`).
@Suite("Every --format json is one line of JSON")
struct JSONOutputTests {
    /// Commands that take --format but are not checked here, with the reason.
    static let unanswerable: [String: String] = [
        "builder:report": "asks the container engine for the builder image, which the recording engine does not have",
        "config:import": "its --format names the format of its input",
        "k8s:render": "renders the current release, and this world's app has none (SchedulerTests.renderPrintsTheCurrentReleaseDeterministically checks its one line)",
    ]

    /// Arguments to try, in order, until one is accepted: none, then the world's app,
    /// storage (and backing services), user and build.
    static let candidates: [[String]] = [[], ["web"], ["data"], ["bob"], ["web", "1"]]

    @Test func everyListAndReportPrintsOneLineOfJSON() throws {
        let w = try TestWorld()
        #expect(w.run(["users:add", "bob"]).status == 0)
        #expect(w.run(["ssh-keys:add", "bob", "laptop"], stdin: try makeKey("ed25519", comment: "bob@laptop").line).status == 0)
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(w.run(["config:set", "web", "GREETING=hello world", "MULTI=a\nb"]).status == 0)
        #expect(w.run(["storage:create", "data"]).status == 0)
        #expect(w.run(["storage:mount", "web", "data:/app/data"]).status == 0)
        #expect(w.run(["domains:add", "web", "www.example.com"]).status == 0)
        // Backing services, from images the recording engine is told it has.
        for (kind, version) in [(DatastoreKind.postgres, "15"), (.redis, "7")] {
            (w.core.engine as! RecordingEngine).images[DatastoreService.defaultImage(kind)] =
                ImageInfo(id: kind.rawValue, created: nil, size: 1, user: "", labels: [DatastoreService.versionLabel: version])
            #expect(w.run(["\(kind.rawValue):create", "data"]).status == 0)
        }

        // The commands that take --format, as help lists them.
        let commands = w.run(["help"]).out.split(separator: "\n").compactMap { line -> String? in
            let word = line.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
            return word.contains(":") || ["releases", "events", "runs", "logs"].contains(word) ? word : nil
        }
        let formatted = Set(commands).filter { w.run([$0, "--help"]).out.contains("--format") }.sorted()
        #expect(formatted.count >= 15, "found only \(formatted)")
        print("--format json checked on: \(formatted.filter { Self.unanswerable[$0] == nil }.joined(separator: " "))")

        for command in formatted where Self.unanswerable[command] == nil {
            var answered = false
            for arguments in Self.candidates {
                let result = w.run([command] + arguments + ["--format", "json"])
                guard result.status == 0 else { continue }
                answered = true
                #expect(result.out.hasSuffix("\n") && result.out.dropLast().firstIndex(of: "\n") == nil,
                        "\(command) \(arguments): not one line: \(result.out)")
                let parsed = try? JSONSerialization.jsonObject(with: Data(result.out.utf8), options: [.fragmentsAllowed])
                #expect(parsed is [Any] || parsed is [String: Any], "\(command) \(arguments): not a JSON array or object: \(result.out)")
                break
            }
            #expect(answered, "\(command) --format json succeeded with none of \(Self.candidates)")
        }
        for command in Self.unanswerable.keys { #expect(formatted.contains(command), "\(command) no longer takes --format; remove it") }
    }
}
