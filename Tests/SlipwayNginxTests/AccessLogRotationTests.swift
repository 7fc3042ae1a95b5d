import Foundation
import Testing
@testable import SlipwayCore
@testable import SlipwayNginx

/// Access-log rotation on a real managed nginx (a temp data dir, 0700 as in production,
/// a free loopback port): under a flood of keep-alive requests, a rotation must start
/// no new workers (a reload closes keep-alive connections: the proxy benchmark's
/// socket errors) and lose no request, and the moved file must stop growing, so the
/// two kept files stay bounded however many requests an attacker sends.
@Suite("nginx: access-log rotation", .serialized)
struct AccessLogRotationTests {
    static let maxBytes = 32 * 1024

    @Test func rotationReopensTheLogsWithoutAReloadAndNoRequestFails() throws {
        let nginx = try ManagedNginx()
        defer { nginx.stop() }
        let idle = try KeepAliveClient(port: nginx.port)
        #expect(try idle.get("/before") == 503)
        let flood = Flood(port: nginx.port, connections: 2)
        defer { flood.stop() }

        let master = try #require(nginx.proxy.runningPID)
        let workers = NginxProxy.children(of: master)
        #expect(!workers.isEmpty)
        for round in 1...3 {
            try nginx.waitForLog(biggerThan: Self.maxBytes)
            #expect(nginx.proxy.rotateAccessLogs(maxBytes: Self.maxBytes) == ["web"], "round \(round)")
            // No new generation of workers, and none told to shut down.
            #expect(NginxProxy.children(of: master) == workers, "round \(round): nginx started new workers")
            #expect(!workers.contains(where: NginxProxy.isShuttingDown), "round \(round)")
        }
        // The moved file is closed by every nginx process: it stops growing while the flood goes on.
        let moved = nginx.log + ".1"
        let movedSize = nginx.size(moved)
        let liveSize = nginx.size(nginx.log)
        Thread.sleep(forTimeInterval: 1.5)  // the logs' flush=1s
        #expect(nginx.size(moved) == movedSize, "the moved log is still written to")
        #expect(nginx.size(nginx.log) > liveSize, "the new log is not written to")
        let (served, failed) = flood.stop()
        #expect(served > 0 && failed == 0, "\(served) served, \(failed) failed across the rotations")
        // A keep-alive connection left idle across the rotations is still open.
        #expect(try idle.get("/after") == 503)
        #expect(try FileManager.default.contentsOfDirectory(atPath: nginx.proxy.accessLogDirectory).sorted() == ["web.access.log", "web.access.log.1"])
    }

    /// A worker that cannot reopen (here: the logs folder made unreachable for it; in
    /// life, a master an earlier Slipway started with absolute paths) would write to the
    /// moved file forever: then the rotation reloads nginx, and the moved file stops growing.
    @Test func aWorkerThatCannotReopenGetsAReloadSoTheMovedFileStopsGrowing() throws {
        let nginx = try ManagedNginx()
        defer { nginx.stop() }
        let flood = Flood(port: nginx.port, connections: 1)
        defer { flood.stop() }
        let master = try #require(nginx.proxy.runningPID)
        let workers = NginxProxy.children(of: master)
        #expect(chmod(nginx.proxy.accessLogDirectory, 0o700) == 0)
        try nginx.waitForLog(biggerThan: Self.maxBytes)
        #expect(nginx.proxy.rotateAccessLogs(maxBytes: Self.maxBytes) == ["web"])
        #expect(NginxProxy.children(of: master) != workers, "no reload: the workers still write to the moved file")
        let moved = URL(fileURLWithPath: nginx.log + ".1").resolvingSymlinksInPath().path
        #expect(NginxProxy.waitUntilNoneHolds([moved], master: master, seconds: 10), "an nginx process still holds the moved log")
        let movedSize = nginx.size(nginx.log + ".1")
        Thread.sleep(forTimeInterval: 1.5)
        #expect(nginx.size(nginx.log + ".1") == movedSize)
        _ = flood.stop()
    }
}

/// A managed nginx serving one idle app (`web.localhost`, answered 503 by nginx itself)
/// from a temp data dir; `stop` ends it and removes the dir.
private final class ManagedNginx {
    let dataDir: String
    let port: Int
    let proxy: NginxProxy
    var log: String { proxy.accessLogPath(for: try! AppName("web")) }

    init() throws {
        var settings = Settings()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-rotation-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        settings.dataDir = dataDir
        port = try freePort()
        settings.proxyPort = port
        settings.tlsPort = try freePort()
        proxy = NginxProxy(settings: settings, paths: DataPaths(root: dataDir))
        try proxy.ensureRunning()
        try proxy.apply(Site(app: try AppName("web"), names: ["web.localhost"], endpoints: []))
    }

    func size(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? 0 }

    func waitForLog(biggerThan bytes: Int) throws {
        for _ in 0..<300 where size(log) <= bytes { Thread.sleep(forTimeInterval: 0.05) }
        try #require(size(log) > bytes, "the access log did not pass \(bytes) bytes in 15 s")
    }

    func stop() {
        if let pid = proxy.runningPID {
            kill(pid, SIGTERM)
            for _ in 0..<500 where kill(pid, 0) == 0 { Thread.sleep(forTimeInterval: 0.01) }
        }
        try? FileManager.default.removeItem(atPath: dataDir)
    }
}

/// Requests sent back to back on keep-alive connections from threads of their own
/// until `stop`; a closed connection or a missing answer counts as failed (and the
/// connection is opened again).
private final class Flood: @unchecked Sendable {
    private let lock = NSLock()
    private var served = 0, failed = 0, stopping = false
    private let done = DispatchGroup()

    init(port: Int, connections: Int) {
        for n in 0..<connections {
            done.enter()
            Thread.detachNewThread { [self] in
                var client = try? KeepAliveClient(port: port)
                var i = 0
                while !lock.withLock({ stopping }) {
                    i += 1
                    let status = try? client?.get("/flood-\(n)-\(i)")
                    lock.withLock { if status == 503 { served += 1 } else { failed += 1 } }
                    // nginx ends a connection after keepalive_requests (1000) and says so: not a failure.
                    if status != 503 || client?.closedByServer == true { client = try? KeepAliveClient(port: port) }
                }
                done.leave()
            }
        }
    }

    /// Stops the threads (once) and returns the requests served and failed.
    @discardableResult
    func stop() -> (served: Int, failed: Int) {
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { (served, failed) }
    }
}

/// One HTTP/1.1 connection to nginx on loopback, kept open across requests.
private final class KeepAliveClient {
    let fd: Int32
    /// The last answer said `Connection: close`.
    private(set) var closedByServer = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw UserFacingError.invalid("cannot connect to port \(port)") }
    }

    deinit { close(fd) }

    /// The answer's status, or an error if the connection closed before a whole answer.
    func get(_ path: String) throws -> Int {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: web.localhost\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { throw UserFacingError.invalid("send failed") }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound]
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if text.utf8.count - text.utf8.distance(from: text.startIndex, to: end.upperBound) >= length,
                   let status = Int(head.split(separator: " ").dropFirst().first ?? "") {
                    closedByServer = head.lowercased().contains("\r\nconnection: close")
                    return status
                }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw UserFacingError.invalid("the connection closed") }
            received += buffer[0..<n]
        }
    }
}

private func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw UserFacingError.invalid("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
