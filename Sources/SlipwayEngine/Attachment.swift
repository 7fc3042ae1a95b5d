import Foundation
import SlipwayCore

/// A container's (or an exec's) stdin/stdout/stderr, attached over the engine's
/// hijacked HTTP connection (`POST /containers/{id}/attach` or `POST /exec/{id}/start`
/// with `Upgrade: tcp`). AsyncHTTPClient
/// closes on `101 Switching Protocols`, so this one connection is a plain blocking
/// unix socket, used from the command's own thread.
final class SocketAttachment: ContainerAttachment, @unchecked Sendable {
    private let fd: Int32
    private var leftover: Data

    /// Attaches to a container; it must not have started yet, so no output is missed.
    convenience init(socketPath: String, containerID: String) throws {
        try self.init(socketPath: socketPath,
                      request: "POST /v1.41/containers/\(containerID)/attach?stream=1&stdin=1&stdout=1&stderr=1", body: nil, what: "attach")
    }

    /// Starts an exec instance attached (its output begins only once this connection exists).
    convenience init(socketPath: String, execID: String, tty: Bool) throws {
        try self.init(socketPath: socketPath, request: "POST /v1.41/exec/\(execID)/start",
                      body: Data("{\"Detach\":false,\"Tty\":\(tty)}".utf8), what: "start the exec")
    }

    /// Connects, sends `request` (method and path) with `body` as JSON, and upgrades.
    /// (Once `fd` is set every property is, so a throw below still closes it in `deinit`.)
    private init(socketPath: String, request: String, body: Data?, what: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        leftover = Data()
        guard fd >= 0 else { throw UserFacingError(.unavailable, "cannot open a socket to the container engine") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw UserFacingError.invalid("the engine socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw UserFacingError(.unavailable, "the container engine at \(socketPath) is not answering; start it (scripts/engine.sh starts podman's API service) or set engine_socket in the config")
        }
        let requestHead = "\(request) HTTP/1.1\r\nHost: engine\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            + (body.map { "Content-Type: application/json\r\nContent-Length: \($0.count)\r\n" } ?? "Content-Type: text/plain\r\n") + "\r\n"
        try writeAll(Data(requestHead.utf8) + (body ?? Data()))
        // Read the response head; anything after it is already stream data.
        var head = Data()
        while head.range(of: Data("\r\n\r\n".utf8)) == nil {
            let chunk = try readSome(timeoutMilliseconds: 10_000)
            guard let chunk, !chunk.isEmpty else { throw UserFacingError(.unavailable, "the container engine closed the connection to \(what)") }
            head.append(chunk)
            if head.count > 64 * 1024 { throw UserFacingError(.unavailable, "the container engine sent an oversized answer to \(what)") }
        }
        let end = head.range(of: Data("\r\n\r\n".utf8))!
        let statusLine = String(decoding: head[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        guard statusLine.contains(" 101 ") || statusLine.contains(" 200 ") else {
            throw UserFacingError(.unavailable, "the container engine refused to \(what): \(statusLine)")
        }
        leftover = Data(head[end.upperBound...])
    }

    deinit { close(fd) }

    func write(_ data: Data) throws { try writeAll(data) }

    /// End of the container's stdin.
    func closeWrite() { shutdown(fd, Int32(SHUT_WR)) }

    func read(timeoutMilliseconds: Int32) throws -> Data? {
        if !leftover.isEmpty {
            defer { leftover = Data() }
            return leftover
        }
        return try readSome(timeoutMilliseconds: timeoutMilliseconds)
    }

    private func readSome(timeoutMilliseconds: Int32) throws -> Data? {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pollFD, 1, timeoutMilliseconds)
        if ready == 0 { return nil }
        if ready < 0 { return errno == EINTR ? nil : Data() }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let n = Glibc.read(fd, &buffer, buffer.count)
        if n < 0 { return errno == EINTR || errno == EAGAIN ? nil : Data() }
        return Data(buffer[0..<n])
    }

    private func writeAll(_ data: Data) throws {
        var rest = data[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw UserFacingError(.unavailable, "the container's stdin closed")
            }
            rest = rest.dropFirst(n)
        }
    }
}

extension DockerEngine {
    public func attach(_ id: String) throws -> ContainerAttachment {
        try SocketAttachment(socketPath: endpoint, containerID: id)
    }

    public func startExec(_ execID: String, tty: Bool) throws -> ContainerAttachment {
        try SocketAttachment(socketPath: endpoint, execID: Self.escape(execID), tty: tty)
    }
}
