import Foundation
import GRDB
import Testing
@testable import SlipwayCore

/// How routing changes reach the proxy, on a temp store and a recording proxy: after
/// their commit and outside any transaction, and undone when the proxy fails.
@Suite("Routing: changes and the proxy")
struct RoutingChangeTests {
    /// Every row but the audit log's (a failed command records its failure there).
    func state(_ w: TestWorld) throws -> String {
        try w.dump().split(separator: "\n").filter { !$0.hasPrefix("events:") }.joined(separator: "\n")
    }

    func events(_ w: TestWorld) throws -> [String] {
        try w.core.store.read { db in try String.fetchAll(db, sql: "SELECT outcome || ' ' || detail FROM events ORDER BY id") }
    }

    @Test func aChangeIsLiveOnceCommittedAndNoWriterWaitsForTheProxy() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        #expect(w.run(["apps:create", "other"]).status == 0)
        let web = try AppName("web")
        // While the proxy works (nginx checks and reloads for up to seconds), another
        // command writes the store, on another thread: it must not wait for the proxy.
        let writer = DispatchSemaphore(value: 0)
        w.proxy.duringApply = {
            let world = w
            Thread.detachNewThread {
                if world.run(["config:set", "other", "A=1"]).status == 0 { writer.signal() }
            }
            #expect(writer.wait(timeout: .now() + 5) == .success, "a writer waited for the proxy")
            // What the proxy is asked to serve is already recorded.
            #expect(try! world.core.store.read { db in try String.fetchAll(db, sql: "SELECT name FROM domains") } == ["www.example.com"])
        }
        let added = w.run(["domains:add", "web", "www.example.com"])
        w.proxy.duringApply = nil
        #expect(added.status == 0, "\(added.err)")
        #expect(w.proxy.live(web)?.names == ["web.localhost", "www.example.com"])
        #expect(w.run(["config:get", "other", "A"]).out == "1\n")
    }

    @Test(arguments: [RecordingProxy.Failure.afterLive, .refused])
    func aChangeTheProxyDoesNotTakeIsUndone(_ failure: RecordingProxy.Failure) throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        #expect(w.run(["domains:add", "web", "a.example.com"]).status == 0)
        let web = try AppName("web")
        let serving = try #require(w.proxy.live(web))
        let before = try state(w)

        for change in [["domains:add", "web", "b.example.com"], ["domains:set", "web", "c.example.com"],
                       ["domains:remove", "web", "a.example.com"], ["domains:clear", "web"]] {
            w.proxy.fail(web, failure)
            let result = w.run(change)
            #expect(result.status != 0 && result.err.hasPrefix("error: "), "\(change): \(result.err)")
            #expect(try state(w) == before, "\(change) stayed recorded")
            #expect(w.proxy.live(web) == serving, "\(change): the proxy does not serve the previous site")
        }
        // The audit log, append-only, says that each was undone and why.
        let log = try events(w)
        let undone = log.filter { $0.hasPrefix("failed undone, the proxy did not take it (") }
        #expect(undone.count == 4 && undone[0].hasSuffix("): added domains b.example.com"), "\(log)")
        // Once the proxy takes it, the same change is made.
        #expect(w.run(["domains:add", "web", "b.example.com"]).status == 0)
        #expect(w.proxy.live(web)?.names == ["web.localhost", "a.example.com", "b.example.com"])
    }

    @Test func aGlobalDomainTheProxyDoesNotTakeIsUndoneForEveryApp() throws {
        let w = try TestWorld()
        for app in ["api", "web", "zed"] { #expect(w.run(["apps:create", app]).status == 0) }
        #expect(w.run(["domains:add", "web", "www.example.org"]).status == 0)
        let apps = try ["api", "web", "zed"].map(AppName.init)
        for app in apps { try w.core.routing.publish(app) }
        let serving = apps.map { w.proxy.live($0) }
        let before = try state(w)
        // The first app takes the new names; the second fails after they are live.
        w.proxy.fail(apps[1], .afterLive)
        let result = w.run(["domains:set-global", "example.com"])
        #expect(result.status != 0 && result.err.hasPrefix("error: "), "\(result.err)")
        #expect(try state(w) == before)
        #expect(apps.map { w.proxy.live($0) } == serving)
        #expect(w.run(["domains:report", "web"]).out.contains("Global domain:   localhost"))
        // The third was never asked.
        #expect(!w.proxy.calls.suffix(4).contains("apply zed"), "\(w.proxy.calls)")
    }

    @Test func aCertificateTheProxyDoesNotTakeLeavesNoRowNoFilesAndPlainHTTP() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let web = try AppName("web")
        let (cert, key) = try RoutingUnitTests().makeCertificate(["web.localhost"])
        let before = try state(w)
        w.proxy.fail(web, .afterLive)
        let refused = w.run(["certs:add", "web"], stdin: cert + key)
        #expect(refused.status != 0 && refused.err.hasPrefix("error: "), "\(refused.err)")
        #expect(try state(w) == before)
        #expect(w.proxy.live(web)?.tls == nil)
        let certs = w.core.paths.root + "/certs"
        #expect(((try? FileManager.default.subpathsOfDirectory(atPath: certs)) ?? []).filter { $0.hasSuffix(".crt") || $0.hasSuffix(".key") } == [])

        // Added, then a removal the proxy fails to load: the certificate stays, and so does HTTPS.
        #expect(w.run(["certs:add", "web"], stdin: cert + key).status == 0)
        #expect(w.proxy.live(web)?.tls?.names == ["web.localhost"])
        w.proxy.fail(web, .afterLive)
        #expect(w.run(["certs:remove", "web"]).status != 0)
        #expect(w.proxy.live(web)?.tls?.names == ["web.localhost"])
        #expect(w.run(["certs:report", "web"]).out.contains("web.localhost"))
        #expect(FileManager.default.fileExists(atPath: try #require(w.proxy.live(web)?.tls?.certificatePath)))
    }

    @Test func publishingAndUnpublishingReachTheProxy() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let web = try AppName("web")
        try w.core.routing.publish(web, endpoints: ["127.0.0.1:40001"])
        #expect(w.proxy.live(web)?.endpoints == ["127.0.0.1:40001"])
        // A publish the proxy fails to take throws; the routing state has nothing to undo.
        w.proxy.fail(web, .refused)
        #expect(throws: UserFacingError.self) { try w.core.routing.publish(web, endpoints: []) }
        #expect(w.proxy.live(web)?.endpoints == ["127.0.0.1:40001"])
        try w.core.routing.unpublish(web)
        #expect(w.proxy.live(web) == nil)
    }
}

/// Process management (pid files, `/proc`, signals) lives beside the code that needs
/// it (Sources/SlipwayNginx for nginx, Sources/SlipwayHost for deploy locks' holders),
/// never in SlipwayCore.
@Suite("Layers: SlipwayCore manages no processes")
struct CoreManagesNoProcessesTests {
    @Test func slipwayCoreHasNoKillProcOrPidFileCode() throws {
        let core = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/SlipwayCore").path
        let files = try FileManager.default.subpathsOfDirectory(atPath: core).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 20, "found no SlipwayCore sources under \(core)")
        let forbidden = ["kill(", "\"/proc/", "pidFile", "pid file", "SIGHUP", "SIGKILL"]
        var found: [String] = []
        for file in files {
            let lines = try String(contentsOfFile: core + "/" + file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() where forbidden.contains(where: { line.contains($0) }) {
                // Comments may name them (an exit by SIGKILL is how an OOM kill shows).
                if line.trimmingCharacters(in: .whitespaces).hasPrefix("//") { continue }
                // Running a program includes stopping it past its timeout: ProcessRunner
                // may signal the child it spawned itself (through ChildProcess, which
                // signals only a child it has not reaped), never a process found elsewhere.
                if file == "Support/ProcessRunner.swift" && line.contains("child.signal(SIGKILL)") { continue }
                if file == "Support/ChildProcess.swift" && line.contains("if status == nil { _ = kill(pid, signal) }") { continue }
                found.append("Sources/SlipwayCore/\(file):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(found.isEmpty, "process management belongs outside SlipwayCore:\n\(found.joined(separator: "\n"))")
    }
}
