import Foundation
import Testing
@testable import SlipwayCore

/// The store of outputs (`OutputService`): bounded per app and kind and per record,
/// safe for concurrent writers, files gone with records and apps, and records a dead
/// server left running marked interrupted.
@Suite("Stored output")
struct OutputStoreTests {
    func world(keep: Int = 20, maxBytes: Int = 1 << 20) throws -> TestWorld {
        let w = try TestWorld { $0.outputRecordsToKeep = keep; $0.outputMaxBytes = maxBytes }
        #expect(w.run(["apps:create", "web"]).status == 0)
        return w
    }

    func files(_ w: TestWorld) throws -> [String] {
        let app = try #require(try w.core.apps.find(AppName("web")))
        let dir = w.core.paths.outputs(ofApp: app.id!)
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    @Test("a record keeps its lines and ends with its status and size")
    func roundTrip() throws {
        let w = try world()
        let out = w.core.outputs
        let recording = try out.start(app: AppName("web"), kind: .build, ref: "7")
        recording.write("-----> Building web")
        recording.write("héllo")
        #expect(try out.records(of: AppName("web"), kind: .build, ref: nil).map(\.status) == [.running])
        recording.finish(.failed)
        recording.finish(.succeeded)  // only the first counts
        let record = try #require(try out.records(of: AppName("web"), kind: .build, ref: "7").first)
        #expect(record.status == .failed && record.finishedAt != nil)
        #expect(record.bytes == Int64("-----> Building web\nhéllo\n".utf8.count))
        #expect(try out.text(of: record) == "-----> Building web\nhéllo\n")
        #expect(try out.records(of: AppName("web"), kind: .deploy, ref: nil).isEmpty)
        #expect(try out.records(of: AppName("web"), kind: .build, ref: "8").isEmpty)
    }

    @Test("exactly output_records_to_keep records of a kind stay, their files too; other kinds are apart")
    func retention() throws {
        let w = try world(keep: 3)
        let out = w.core.outputs
        let task = try out.start(app: AppName("web"), kind: .task, ref: "v1 predeploy")
        task.finish(.succeeded)
        for n in 1...5 {
            let r = try out.start(app: AppName("web"), kind: .deploy, ref: "v\(n)")
            r.write("deploy \(n)")
            r.finish(.succeeded)
        }
        let kept = try out.records(of: AppName("web"), kind: .deploy, ref: nil)
        #expect(kept.map(\.ref) == ["v5", "v4", "v3"])
        #expect(try out.records(of: AppName("web"), kind: .task, ref: nil).count == 1)
        #expect(try files(w) == ([task.record] + kept).map { "\($0.id!).log" }.sorted())
        #expect(try out.text(of: kept[2]) == "deploy 3\n")
    }

    @Test("past output_max_bytes the middle is left out with a marker; head and tail stay")
    func truncation() throws {
        let w = try world(maxBytes: 2048)
        let out = w.core.outputs
        let recording = try out.start(app: AppName("web"), kind: .run, ref: "web.detached.1")
        let lines = (0..<1000).map { String(format: "line %04d", $0) }  // 10 bytes each with the newline
        for line in lines { recording.write(line) }
        recording.finish(.succeeded)
        let record = try #require(try out.records(of: AppName("web"), kind: .run, ref: nil).first)
        #expect(record.bytes == 10_000)
        let text = try out.text(of: record)
        #expect(text.utf8.count <= 2048 + 64)
        let stored = text.split(separator: "\n").map(String.init)
        let marker = try #require(stored.firstIndex { $0.hasPrefix("[... ") })
        #expect(stored[marker] == "[... \(10_000 - (stored.count - 1) * 10) bytes left out ...]")
        #expect(Array(stored[..<marker]) == Array(lines.prefix(marker)))
        #expect(Array(stored[(marker + 1)...]) == Array(lines.suffix(stored.count - marker - 1)))
        #expect(marker == 102 && stored.count - marker - 1 == 102)
    }

    @Test("under the limit nothing is left out and no marker is written")
    func noTruncation() throws {
        let w = try world(maxBytes: 2048)
        let recording = try w.core.outputs.start(app: AppName("web"), kind: .run, ref: "x")
        for n in 0..<204 { recording.write(String(format: "line %04d", n)) }  // 2040 bytes
        recording.finish(.succeeded)
        let text = try w.core.outputs.text(of: recording.record)
        #expect(!text.contains("left out") && text.split(separator: "\n").count == 204)
    }

    @Test("concurrent writers' lines are whole and none is lost")
    func concurrentWrites() throws {
        let w = try world()
        let recording = try w.core.outputs.start(app: AppName("web"), kind: .build, ref: "1")
        DispatchQueue.concurrentPerform(iterations: 8) { writer in
            for n in 0..<500 { recording.write("writer \(writer) line \(n) " + String(repeating: "x", count: 40)) }
        }
        recording.finish(.succeeded)
        let lines = try w.core.outputs.text(of: recording.record).split(separator: "\n")
        #expect(lines.count == 4000)
        #expect(Set(lines).count == 4000)
        #expect(lines.allSatisfy { $0.hasPrefix("writer ") && $0.hasSuffix(String(repeating: "x", count: 40)) })
    }

    @Test("records left running by a dead server become interrupted at the next start, and stay so")
    func interruptedAtRestart() throws {
        let w = try world()
        let running = try w.core.outputs.start(app: AppName("web"), kind: .run, ref: "web.detached.1")
        running.write("before the restart")
        let done = try w.core.outputs.start(app: AppName("web"), kind: .build, ref: "1")
        done.finish(.succeeded)
        #expect(try w.core.outputs.markInterrupted() == 1)
        // A writer that outlived the server does not take the status back.
        running.finish(.succeeded)
        #expect(try w.core.outputs.records(of: AppName("web"), kind: .run, ref: nil).map(\.status) == [.interrupted])
        #expect(try w.core.outputs.records(of: AppName("web"), kind: .build, ref: nil).map(\.status) == [.succeeded])
    }

    @Test("follow hands over the text as it grows and returns once the record ends")
    func follow() throws {
        let w = try world()
        let recording = try w.core.outputs.start(app: AppName("web"), kind: .run, ref: "r")
        recording.write("first")
        let seen = Collected()
        let writer = Thread {
            Thread.sleep(forTimeInterval: 0.3)
            recording.write("second")
            Thread.sleep(forTimeInterval: 0.3)
            recording.finish(.succeeded)
        }
        writer.start()
        let ended = try w.core.outputs.follow(recording.record, poll: 0.05, isCancelled: { false }) { seen.append($0) }
        #expect(ended?.status == .succeeded)
        #expect(seen.all.joined() == "first\nsecond\n")
        #expect(seen.all.count >= 2)
    }

    @Test("records and files go with the app")
    func removedWithApp() throws {
        let w = try world()
        let recording = try w.core.outputs.start(app: AppName("web"), kind: .build, ref: "1")
        recording.finish(.succeeded)
        let dir = w.core.paths.outputs(ofApp: recording.record.appId)
        #expect(FileManager.default.fileExists(atPath: dir))
        #expect(w.run(["apps:destroy", "web", "--force"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: dir))
        let rows = try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM output_records") }
        #expect(rows == 0)
    }

    @Test("the bounds are read from slipway.toml, and nonsense is refused")
    func settings() throws {
        let s = try Settings.parse("output_records_to_keep = 2\noutput_max_bytes = 4096\n", source: "t")
        #expect(s.outputRecordsToKeep == 2 && s.outputMaxBytes == 4096)
        #expect(Settings().outputRecordsToKeep == 20 && Settings().outputMaxBytes == 1 << 20)
        #expect(throws: UserFacingError.self) { try Settings.parse("output_records_to_keep = 0\n", source: "t") }
        #expect(throws: UserFacingError.self) { try Settings.parse("output_max_bytes = 10\n", source: "t") }
    }

    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func append(_ s: String) { lock.withLock { items.append(s) } }
        var all: [String] { lock.withLock { items } }
    }
}
