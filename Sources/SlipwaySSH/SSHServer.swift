import CLibSSH
import Foundation
import Logging
import SlipwayCommands
import SlipwayCore

/// The embedded SSH front: one listening socket, one accept thread, and one OS
/// thread per connection (libssh calls block; they never run on Swift's
/// cooperative pool).
public final class SSHServer: @unchecked Sendable {
    /// Limits and timeouts.
    public struct Options: Sendable {
        public var host: String
        public var port: UInt16
        /// Concurrent sessions served; past it a session gets a clear refusal.
        public var maxSessions = 256
        /// Seconds from connect to successful authentication.
        public var authTimeout: TimeInterval = 30
        /// Seconds without any traffic before a session is dropped.
        public var idleTimeout: TimeInterval = 600
        /// Public key tries per connection.
        public var maxAuthAttempts = 10
        /// The command git's pre-receive hook runs (this binary's `hook:pre-receive`);
        /// nil: pushes are stored without building.
        public var hookCommand: [String]?

        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` (`[::1]:2222` for IPv6).
        public static func parse(listen: String) throws -> Options {
            guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
                throw SSHServerError.listen("invalid listen address \"\(listen)\": write HOST:PORT, e.g. 0.0.0.0:2222")
            }
            var host = String(listen[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return Options(host: host.isEmpty ? "0.0.0.0" : host, port: port)
        }
    }

    let core: Core
    let runner: CommandRunner
    let options: Options
    let logger: Logger
    private let bind: ssh_bind
    private let hostKey: HostKey
    private let listenFD: Int32
    /// The address actually bound (port 0 picks a free one).
    public let boundAddress: String

    private let lock = NSCondition()
    private var activeSessions = 0
    private var accepting = true
    private var acceptThreadDone = false

    public init(core: Core, options: Options, logger: Logger) throws {
        self.core = core
        self.options = options
        self.logger = logger
        runner = CommandRunner(core: core, logger: logger)
        hostKey = try HostKey(paths: core.paths)

        guard let bind = ssh_bind_new() else { throw SSHServerError.listen("libssh: cannot create a bind") }
        self.bind = bind
        // The bind takes ownership of the key it imports: give it its own copy.
        var keyCopy: ssh_key?
        guard ssh_pki_import_privkey_file(hostKey.path, nil, nil, nil, &keyCopy) == SSH_OK, let keyCopy else {
            throw SSHServerError.hostKey("cannot read the host key at \(hostKey.path)")
        }
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, UnsafeRawPointer(keyCopy)) == SSH_OK else {
            throw SSHServerError.hostKey("libssh refused the host key")
        }
        var noConfig: Bool = false
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &noConfig)
        var rsaMinimum: Int32 = Int32(PublicKey.minimumRSABits)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_RSA_MIN_SIZE, &rsaMinimum)

        (listenFD, boundAddress) = try Self.listen(host: options.host, port: options.port)
    }

    deinit {
        ssh_bind_free(bind)
        close(listenFD)
    }

    /// Starts the accept thread and returns.
    public func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "ssh-accept"
        thread.start()
    }

    /// Stops accepting, then waits up to `grace` seconds for running sessions.
    /// Returns the number of sessions still running when it gave up.
    @discardableResult
    public func stop(grace: TimeInterval) -> Int {
        lock.withLock { accepting = false }
        shutdown(listenFD, Int32(SHUT_RDWR))
        let deadline = Date().addingTimeInterval(grace)
        lock.lock()
        defer { lock.unlock() }
        while activeSessions > 0 || !acceptThreadDone {
            if !lock.wait(until: deadline) { break }
        }
        return activeSessions
    }

    private func acceptLoop() {
        defer { lock.withLock { acceptThreadDone = true; lock.broadcast() } }
        while lock.withLock({ accepting }) {
            let fd = slipway_accept_cloexec(listenFD)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE { usleep(50_000); continue }
                break  // shut down
            }
            serve(fd)
        }
    }

    private func serve(_ fd: Int32) {
        var one: Int32 = 1
        // Without it every command pays Nagle + delayed ACK (~40-80 ms).
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let peer = Self.peerName(fd)
        let count = lock.withLock { () -> Int in activeSessions += 1; return activeSessions }
        // Far past the cap, not even a refusal message is worth a thread.
        if count > options.maxSessions * 2 {
            close(fd)
            lock.withLock { activeSessions -= 1; lock.broadcast() }
            return
        }
        guard let session = ssh_new() else {
            close(fd)
            lock.withLock { activeSessions -= 1; lock.broadcast() }
            return
        }
        var timeout: Int = Int(options.authTimeout)
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        // Only the accept thread touches the bind.
        guard ssh_bind_accept_fd(bind, session, fd) == SSH_OK else {
            logger.warning("ssh accept failed", metadata: ["peer": "\(peer)"])
            ssh_free(session)
            close(fd)
            lock.withLock { activeSessions -= 1; lock.broadcast() }
            return
        }
        let connection = SSHConnection(session: session, server: self, peer: peer, overCapacity: count > options.maxSessions)
        let thread = Thread { [self] in
            connection.run()
            lock.withLock { activeSessions -= 1; lock.broadcast() }
        }
        thread.name = "ssh-session"
        thread.stackSize = 1 << 20
        thread.start()
    }

    // MARK: Sockets

    private static func listen(host: String, port: UInt16) throws -> (Int32, String) {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            throw SSHServerError.listen("invalid listen host \"\(host)\": give an IP address, e.g. 0.0.0.0 or 127.0.0.1")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SSHServerError.listen("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SSHServerError.listen("cannot listen on \(host):\(port): \(message); choose another --listen address")
        }
        guard Glibc.listen(fd, 512) == 0 else {
            close(fd)
            throw SSHServerError.listen("listen: \(String(cString: strerror(errno)))")
        }
        return (fd, localName(fd, fallbackHost: host))
    }

    private static func localName(_ fd: Int32, fallbackHost: String) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return format(&storage, fallbackHost: fallbackHost)
    }

    private static func peerName(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
        return format(&storage, fallbackHost: "?")
    }

    private static func format(_ storage: inout sockaddr_storage, fallbackHost: String) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return fallbackHost }
        let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let s = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return h.contains(":") ? "[\(h)]:\(s)" : "\(h):\(s)"
    }
}
