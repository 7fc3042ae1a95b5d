import CLibSSH
import Foundation
import Logging
import SlipwayCommands
import SlipwayCore

/// The embedded SSH front: one listening socket, one accept thread, and one OS
/// thread per connection that has spoken (libssh calls block; they never run on
/// Swift's cooperative pool).
///
/// Admission, in stages, so that floods of unauthenticated connections cannot lock
/// registered users out, and a script's burst of clients waits instead of being reset:
/// 1. Silent: accepted, nothing sent yet. Held in the accept thread's poll set only
///    (`SilentConnections`): past `bannerTimeout` or when the set is full (oldest
///    first) they are dropped.
/// 2. Waiting: the client spoke but all `maxStartups` handshake places are taken. Held
///    in the accept thread's poll set only (`HandshakeLine`, nothing read), admitted
///    in turn as places free up; dropped when `authTimeout` after accept passes or when
///    it finds the line full (`maxWaitingConnections`).
/// 3. Handshake: a place, a thread and a libssh session, until `authTimeout` after accept.
/// 4. Session: authenticated; only these count against `maxSessions`.
public final class SSHServer: @unchecked Sendable {
    /// Limits and timeouts.
    public struct Options: Sendable {
        public var host: String
        public var port: UInt16
        /// Concurrent authenticated sessions served; past it a session gets a clear refusal.
        public var maxSessions: Int
        /// Concurrent sessions of one non-admin user; past it that user's new sessions get
        /// a clear refusal. Those do not count against `maxSessions`: one tenant's flood of
        /// sessions (idle `ssh -N`s, `logs -t`s) never refuses another user's session.
        /// Admins are trusted and counted only against `maxSessions`.
        public var maxSessionsPerUser: Int
        /// Seconds from connect to successful authentication (`login_grace_time`).
        public var authTimeout: TimeInterval
        /// Handshakes in progress at once, each with a thread (`max_startups`); past it a
        /// client that speaks waits in line.
        public var maxStartups: Int
        /// Clients waiting in line for a handshake place; past it a newcomer is dropped
        /// (`max_waiting_connections`).
        public var maxWaitingConnections: Int
        /// Seconds a new connection may stay silent before its version line (`banner_timeout`).
        public var bannerTimeout: TimeInterval
        /// Silent connections held at once; past it the oldest is dropped (`max_silent_connections`).
        public var maxSilentConnections: Int
        /// Seconds a session with nothing running (no command yet, or its command ended)
        /// may go without traffic before it is dropped. A running command is never cut.
        public var idleTimeout: TimeInterval
        /// Public key tries per connection.
        public var maxAuthAttempts = 10
        /// The command git's pre-receive hook runs (this binary's `hook:pre-receive`);
        /// nil: pushes are stored without building.
        public var hookCommand: [String]?

        /// Every limit and timeout from `settings` (the config file's, or its defaults).
        public init(host: String, port: UInt16, settings: Settings = Settings()) {
            self.host = host
            self.port = port
            maxSessions = settings.maxSessions
            maxSessionsPerUser = settings.maxSessionsPerUser
            authTimeout = TimeInterval(settings.loginGraceTime)
            maxStartups = settings.maxStartups.places
            maxWaitingConnections = settings.maxWaitingConnections
            bannerTimeout = TimeInterval(settings.bannerTimeout)
            maxSilentConnections = settings.maxSilentConnections
            idleTimeout = TimeInterval(settings.idleTimeout)
        }

        /// Parses `HOST:PORT` (`[::1]:2222` for IPv6); the rest from `settings`.
        public static func parse(listen: String, settings: Settings = Settings()) throws -> Options {
            guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
                throw SSHServerError.listen("invalid listen address \"\(listen)\": write HOST:PORT, e.g. 0.0.0.0:2222")
            }
            var host = String(listen[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return Options(host: host.isEmpty ? "0.0.0.0" : host, port: port, settings: settings)
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
    /// Connections with a thread that have not authenticated yet.
    private var handshakes = 0
    /// Clients in the accept thread's line (may overstate it): a handshake place that
    /// frees up while some wait wakes the accept thread.
    private var waiting = 0
    /// Authenticated connections, but those past their user's own limit.
    private var sessions = 0
    /// Authenticated connections of each non-admin user, past their limit or not.
    private var sessionsByUser: [UserKey: Int] = [:]
    /// Authenticated connections past their user's own limit (held only to refuse).
    private var sessionsPastUserLimit = 0
    private var accepting = true
    private var acceptThreadDone = false
    /// Written by `stop()` to wake the accept thread's poll.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// Pre-auth drops since the last report (accept thread only).
    private var dropped = (full: 0, silent: 0, lineFull: 0, lineDeadline: 0)

    public init(core: Core, options: Options, logger: Logger) throws {
        self.core = core
        self.options = options
        self.logger = logger
        runner = CommandRunner(core: core, logger: logger, gitHook: options.hookCommand)
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
        // Without this libssh verifies any signature algorithm it knows, SHA-1 ssh-rsa
        // included, though it never advertised it. It also becomes server-sig-algs.
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES, Self.signatureAlgorithms) == SSH_OK,
              ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, "ssh-ed25519") == SSH_OK else {
            throw SSHServerError.listen("libssh refused the algorithm lists: \(String(cString: ssh_get_error(UnsafeMutableRawPointer(bind))))")
        }

        var wake: [Int32] = [-1, -1]
        guard slipway_pipe_cloexec(&wake, 1) == 0 else { throw SSHServerError.listen("pipe: \(String(cString: strerror(errno)))") }
        (wakeRead, wakeWrite) = (wake[0], wake[1])
        // Never block: a full pipe already wakes the accept thread.
        for fd in [wakeRead, wakeWrite] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        (listenFD, boundAddress) = try Self.listen(host: options.host, port: options.port)
        _ = fcntl(listenFD, F_SETFL, fcntl(listenFD, F_GETFL) | O_NONBLOCK)
        let budget = Self.fdBudget()
        silentCapacity = min(options.maxSilentConnections, budget)
        lineCapacity = min(options.maxWaitingConnections, budget)
    }

    deinit {
        ssh_bind_free(bind)
        close(listenFD)
        close(wakeRead)
        close(wakeWrite)
    }

    /// Signature algorithms accepted for user keys: SHA-2 RSA, ed25519 and ECDSA
    /// (what `PublicKey` registers), never SHA-1 `ssh-rsa`.
    static let signatureAlgorithms = "ssh-ed25519,ecdsa-sha2-nistp521,ecdsa-sha2-nistp384,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"

    /// How many silent connections the fd limit leaves room for. The soft limit is
    /// raised to the hard one first (a flood is counted in fds); a quarter of it is
    /// the most silent connections may take, a quarter the line, the rest is for
    /// sessions and their jobs.
    private let silentCapacity: Int
    private let lineCapacity: Int

    private static func fdBudget() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = min(limit.rlim_max, 1 << 20)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return max(16, Int(limit.rlim_cur / 4))
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
        var byte: UInt8 = 0
        _ = write(wakeWrite, &byte, 1)
        let deadline = Date().addingTimeInterval(grace)
        lock.lock()
        defer { lock.unlock() }
        while handshakes + sessions + sessionsPastUserLimit > 0 || !acceptThreadDone {
            if !lock.wait(until: deadline) { break }
        }
        return handshakes + sessions + sessionsPastUserLimit
    }

    // MARK: Admission (accept thread)

    private func acceptLoop() {
        var silent = SilentConnections(capacity: silentCapacity)
        var line = HandshakeLine(capacity: lineCapacity)
        var lastReport = ProcessInfo.processInfo.systemUptime
        var listenPausedUntil = 0.0
        defer {
            for entry in silent.entries { drop(entry.fd) }
            for entry in line.entries { drop(entry.fd) }
            lock.withLock { acceptThreadDone = true; lock.broadcast() }
        }
        while lock.withLock({ accepting }) {
            var now = ProcessInfo.processInfo.systemUptime
            let listening = now >= listenPausedUntil
            var entries = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: listening ? listenFD : -1, events: Int16(POLLIN), revents: 0)]
            entries += silent.entries.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            // Those in line have unread bytes (POLLIN would always be set): only a hang-up.
            entries += line.entries.map { pollfd(fd: $0.fd, events: Self.pollReadHangUp, revents: 0) }
            let wait = min(silent.nextExpiry(timeout: options.bannerTimeout, at: now) ?? 1,
                           line.nextExpiry(timeout: options.authTimeout, at: now) ?? 1, listening ? 1 : 0.05)
            let ready = poll(&entries, nfds_t(entries.count), Int32(wait * 1000) + 1)
            if ready < 0 && errno != EINTR { break }
            now = ProcessInfo.processInfo.systemUptime
            if entries[0].revents != 0 { drainWakePipe() }

            // Those in line that hung up, then silent ones that spoke (or hung up).
            let silentPolled = entries[2..<(2 + silent.entries.count)]
            var gone = Set<Int32>()
            for (entry, waiting) in zip(entries[(2 + silent.entries.count)...], line.entries) where entry.revents != 0 {
                gone.insert(waiting.fd)
                drop(waiting.fd)
            }
            line.remove(gone)
            var settled = Set<Int32>()
            for (entry, waiting) in zip(silentPolled, silent.entries) where entry.revents != 0 {
                settled.insert(waiting.fd)
                if hasSpoken(waiting.fd) { admit(waiting.fd, acceptedAt: waiting.since, line: &line) } else { drop(waiting.fd) }
            }
            silent.remove(settled)

            // New arrivals: those that already spoke skip the silent set.
            if entries[1].revents != 0 {
                for _ in 0..<256 {
                    let fd = slipway_accept_cloexec(listenFD)
                    if fd < 0 {
                        if errno == EINTR || errno == ECONNABORTED { continue }
                        if errno == EMFILE || errno == ENFILE {
                            // Out of fds: a silent connection gives one back, else wait a moment.
                            if let oldest = silent.removeOldest() { drop(oldest); dropped.full += 1; continue }
                            listenPausedUntil = now + 0.05
                        }
                        break  // EAGAIN: the backlog is empty (or shut down)
                    }
                    var one: Int32 = 1
                    // Without it every command pays Nagle + delayed ACK (~40-80 ms).
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    Self.keepAlive(fd)
                    if hasSpoken(fd) {
                        admit(fd, acceptedAt: now, line: &line)
                    } else if let evicted = silent.add(fd, at: now) {
                        // It may have spoken since the last poll (this batch is not polled yet).
                        if hasSpoken(evicted.fd) {
                            admit(evicted.fd, acceptedAt: evicted.since, line: &line)
                        } else {
                            drop(evicted.fd)
                            dropped.full += 1
                        }
                    }
                }
            }

            let expired = silent.removeExpired(timeout: options.bannerTimeout, at: now)
            expired.forEach(drop)
            dropped.silent += expired.count
            // Past its deadline before its turn: dropped first, so it never takes a place.
            let late = line.removeExpired(timeout: options.authTimeout, at: now)
            late.forEach(drop)
            dropped.lineDeadline += late.count
            admitWaiting(&line)
            if now - lastReport >= 10 {
                reportDrops()
                lastReport = now
            }
        }
    }

    /// Whether the client has sent anything (its version line). A hang-up or an error
    /// reads as silence: the caller drops such a connection.
    private func hasSpoken(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n > 0
    }

    /// A running command is never cut for silence, so a client that vanished (its host
    /// down, the network gone) must be found another way: after 60 s without traffic
    /// the kernel probes every 10 s, and 6 unanswered probes end the connection,
    /// which ends its command.
    private static func keepAlive(_ fd: Int32) {
        var one: Int32 = 1, idle: Int32 = 60, interval: Int32 = 10, count: Int32 = 6
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
    }

    /// POLLRDHUP (Linux; Swift's Glibc module hides it without _GNU_SOURCE): the peer
    /// closed or shut down its side.
    private static let pollReadHangUp: Int16 = 0x2000

    private func drainWakePipe() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &bytes, bytes.count) > 0 {}
    }

    /// Wakes the accept thread if someone waits for the handshake place just freed
    /// (called with `lock` held).
    private func wakeIfWaiting() {
        guard waiting > 0 else { return }
        var byte: UInt8 = 0
        _ = write(wakeWrite, &byte, 1)
    }

    /// Closes with a reset: no FIN handshake, no TIME_WAIT left behind for a flood.
    private func drop(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    private func reportDrops() {
        guard dropped.full + dropped.silent + dropped.lineFull + dropped.lineDeadline > 0 else { return }
        logger.warning("dropped unauthenticated connections", metadata: [
            "silent_set_full": "\(dropped.full)", "silent_past_banner_timeout": "\(dropped.silent)",
            "line_full": "\(dropped.lineFull)", "waited_past_login_grace_time": "\(dropped.lineDeadline)",
        ])
        dropped = (0, 0, 0, 0)
    }

    /// A client that spoke gets a handshake place if one is free and nobody is ahead
    /// of it in line; otherwise it joins the line (or is dropped, the line being full).
    private func admit(_ fd: Int32, acceptedAt: TimeInterval, line: inout HandshakeLine) {
        let placed = lock.withLock { () -> Bool in
            if line.isEmpty && handshakes < options.maxStartups {
                handshakes += 1
                return true
            }
            // Counted before the place is looked for again, so no freed place goes unseen.
            waiting = line.count + 1
            return false
        }
        if placed {
            startHandshake(fd, acceptedAt: acceptedAt)
        } else if !line.join(fd, acceptedAt: acceptedAt) {
            drop(fd)
            dropped.lineFull += 1
        }
    }

    /// Gives the free handshake places to those first in line.
    private func admitWaiting(_ line: inout HandshakeLine) {
        let places = lock.withLock { () -> Int in
            let free = min(line.count, max(0, options.maxStartups - handshakes))
            handshakes += free
            waiting = line.count - free
            return free
        }
        for _ in 0..<places {
            guard let entry = line.next() else { break }
            startHandshake(entry.fd, acceptedAt: entry.acceptedAt)
        }
    }

    /// A libssh session and a thread for a client that holds a handshake place.
    private func startHandshake(_ fd: Int32, acceptedAt: TimeInterval) {
        let peer = Self.peerName(fd)
        guard let session = ssh_new() else {
            close(fd)
            connectionEnded(place: nil)
            return
        }
        // libssh's blocking key exchange gives up at the same deadline as authentication.
        var timeout = Int(max(1, (acceptedAt + options.authTimeout - ProcessInfo.processInfo.systemUptime).rounded(.up)))
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        // Only the accept thread touches the bind.
        guard ssh_bind_accept_fd(bind, session, fd) == SSH_OK else {
            logger.warning("ssh accept failed", metadata: ["peer": "\(peer)"])
            ssh_free(session)
            close(fd)
            connectionEnded(place: nil)
            return
        }
        let connection = SSHConnection(session: session, server: self, peer: peer, acceptedAt: acceptedAt)
        let thread = Thread { connection.run() }
        thread.name = "ssh-session"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// What an authenticated connection may do, decided as it authenticates.
    enum SessionAdmission {
        case admitted
        /// Past `maxSessions`: every command gets a clear refusal.
        case overCapacity
        /// Past `maxSessionsPerUser` for its user: every command gets a clear refusal.
        case overUserLimit(open: Int)
    }

    /// A user as the session counts know them: the row id with its creation time, as
    /// SQLite may give a removed user's id to the next user added, who must not inherit
    /// the sessions still counted for the removed one.
    struct UserKey: Hashable {
        let id: Int64
        let createdAt: Date
    }

    /// The place an authenticated connection holds, given back as it ends.
    struct SessionPlace {
        let admission: SessionAdmission
        /// The user it is counted for, when that user has a limit of their own (non-admins).
        let limitedUser: UserKey?
    }

    /// Moves a connection from handshake to session; nil: far past a limit, not worth
    /// a session at all (disconnect). Twice a limit is the most held open with a refusal,
    /// and all users' sessions past their own limits together at most `maxSessions`.
    func admitSession(for user: User) -> SessionPlace? {
        lock.withLock {
            let limitedUser = user.isAdmin ? nil : user.id.map { UserKey(id: $0, createdAt: user.createdAt) }
            let open = limitedUser.map { sessionsByUser[$0, default: 0] } ?? 0
            let admission: SessionAdmission
            if limitedUser != nil && open >= options.maxSessionsPerUser {
                guard open < options.maxSessionsPerUser * 2, sessionsPastUserLimit < options.maxSessions else { return nil }
                sessionsPastUserLimit += 1
                admission = .overUserLimit(open: open)
            } else {
                guard sessions < options.maxSessions * 2 else { return nil }
                sessions += 1
                admission = sessions > options.maxSessions ? .overCapacity : .admitted
            }
            if let limitedUser { sessionsByUser[limitedUser] = open + 1 }
            handshakes -= 1
            wakeIfWaiting()
            return SessionPlace(admission: admission, limitedUser: limitedUser)
        }
    }

    /// Called once by each connection as its thread ends, with the place it held if it
    /// authenticated.
    func connectionEnded(place: SessionPlace?) {
        lock.withLock {
            if let place {
                if case .overUserLimit = place.admission { sessionsPastUserLimit -= 1 } else { sessions -= 1 }
                if let user = place.limitedUser {
                    let open = sessionsByUser[user, default: 1] - 1
                    sessionsByUser[user] = open > 0 ? open : nil
                }
            } else {
                handshakes -= 1
                wakeIfWaiting()
            }
            lock.broadcast()
        }
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
