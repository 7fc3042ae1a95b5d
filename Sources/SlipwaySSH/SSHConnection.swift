import CLibSSH
import Foundation
import Logging
import SlipwayCommands
import SlipwayCore

/// One SSH connection, owned by one dedicated OS thread from key exchange to
/// disconnect. libssh objects of this connection are touched from this thread
/// only; libssh's callbacks only record what happened, and `pump()` does the I/O
/// after each poll (never inside a callback).
final class SSHConnection: @unchecked Sendable {
    private let session: ssh_session
    private let server: SSHServer
    private let peer: String
    private let logger: Logger
    /// What libssh's packet log tells about this session (see shim.h).
    private let ledger: UnsafeMutablePointer<slipway_packet_ledger>
    private var ledgerInstalled = false

    private var serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>
    private var channelCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    private var event: ssh_event?

    // Session state.
    private var state = SessionState()
    /// Set by a verified signature; re-read from the database before every command.
    private var principal: Principal?
    /// The key that authenticated (base64 blob), to re-read its owner.
    private var keyBase64: String?
    /// The session place it holds once authenticated; past a limit, every command gets a refusal.
    private var place: SSHServer.SessionPlace?
    /// Auth callbacks seen: counts the tries if libssh's log ever stops telling them.
    private var authCallbacks = 0
    private var disconnectRequested = false
    private var channel: ssh_channel?
    private var gitProtocol: String?
    /// Set when the client asked for a pty (`ssh -t`, or an interactive `ssh host`).
    private var terminal: Terminal?
    private var commandLine = "-"

    // Job state.
    private var job: ChannelJob?
    /// A spawned program's `Spawn.finished`.
    private var onEnd: (@Sendable (Int32?) throws -> Void)?
    /// Client bytes for the job's stdin: `inbound[inboundStart...]` (a read offset
    /// rather than removing from the front, which moved the rest at every write).
    private var inbound: [UInt8] = []
    private var inboundStart = 0
    private var inboundCount: Int { inbound.count - inboundStart }
    private var exitStatus: Int32?
    private var exitSentAt: Date?
    private var jobEndedAt: Date?
    private var registered: [Int32: Int16] = [:]
    /// Job fds the last polls found ready (set by their callbacks, cleared when a read
    /// would block): only these are read, so an idle pipe costs no syscall per packet.
    private var ready: Set<Int32> = []
    /// Whether this pump corked the socket (see `cork()`).
    private var corked = false

    // Accounting for the session log line.
    private let acceptedAt: TimeInterval
    private let startedAt = Date()
    private var lastActivity = Date()
    private var bytesIn = 0
    private var bytesOut = 0
    private var scratch = [UInt8](repeating: 0, count: 32 * 1024)

    /// Client bytes buffered for the job's stdin before we stop reading the channel
    /// (which, through libssh, stops re-opening the client's window: back-pressure).
    private static let inboundCapacity = 256 * 1024

    /// `acceptedAt`: monotonic seconds (`ProcessInfo.systemUptime`) at accept, where the
    /// authentication deadline starts.
    init(session: ssh_session, server: SSHServer, peer: String, acceptedAt: TimeInterval) {
        self.session = session
        self.server = server
        self.peer = peer
        self.acceptedAt = acceptedAt
        logger = server.logger
        serverCallbacks = .allocate(capacity: 1)
        serverCallbacks.initialize(to: ssh_server_callbacks_struct())
        channelCallbacks = .allocate(capacity: 1)
        channelCallbacks.initialize(to: ssh_channel_callbacks_struct())
        ledger = .allocate(capacity: 1)
        ledger.initialize(to: slipway_packet_ledger())
    }

    deinit {
        serverCallbacks.deallocate()
        channelCallbacks.deallocate()
        ledger.deallocate()
    }

    // MARK: The connection's life

    /// Runs the connection to its end. Called on the connection's own thread.
    func run() {
        installServerCallbacks()
        installPacketLedger()
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        let authDeadline = acceptedAt + server.options.authTimeout
        guard exchangeKeys(until: authDeadline) else {
            logger.debug("key exchange failed", metadata: ["peer": "\(peer)", "error": "\(String(cString: ssh_get_error(UnsafeMutableRawPointer(session))))"])
            teardown()
            return
        }
        event = ssh_event_new()
        ssh_event_add_session(event, session)

        while true {
            let rc = ssh_event_dopoll(event, 100)
            if !state.isAuthenticated { answerDroppedAuthRequests() }
            if rc == SSH_ERROR || ssh_is_connected(session) == 0 || disconnectRequested { break }
            pump()
            // Past the exec request the packet log has nothing more to tell.
            if job != nil { removePacketLedger() }
            let now = Date()
            if !state.isAuthenticated && ProcessInfo.processInfo.systemUptime > authDeadline {
                logger.info("authentication deadline passed", metadata: ["peer": "\(peer)"])
                break
            }
            // A running command may be silent as long as it likes (a long statement, a quiet
            // build step, a follower): the idle timeout is for a session with nothing running.
            // A client that vanished meanwhile is found by TCP keepalive (`SSHServer`).
            if !commandRunning && now.timeIntervalSince(lastActivity) > server.options.idleTimeout {
                logger.info("idle timeout", metadata: ["peer": "\(peer)", "user": "\(principal?.name ?? "-")"])
                break
            }
            if let sent = exitSentAt, state.clientClosed || now.timeIntervalSince(sent) > 3 { break }
        }
        teardown()
    }

    /// A command started and has not ended yet (its exit status not sent).
    private var commandRunning: Bool { job != nil && exitSentAt == nil }

    /// The key exchange, stepped here (libssh in non-blocking mode) instead of inside
    /// libssh's blocking call, so that every client packet is acknowledged at once.
    ///
    /// Why: during the key exchange OpenSSH's client has Nagle on, and its small
    /// KEXDH_INIT waits for the ACK of its KEXINIT. The server sends nothing after that
    /// KEXINIT, and having just answered the client's banner, Linux counts the
    /// connection as ping-pong and delays the ACK (about 40 ms), so every session paid
    /// 40 ms of waiting. `TCP_QUICKACK` sends a pending ACK now and leaves ping-pong
    /// mode; the kernel may enter it again, so it is set after every step.
    private func exchangeKeys(until deadline: TimeInterval) -> Bool {
        let fd = ssh_get_fd(session)
        ssh_set_blocking(session, 0)
        defer { ssh_set_blocking(session, 1) }
        while true {
            let rc = ssh_handle_key_exchange(session)
            if rc == SSH_OK { return true }
            guard rc == SSH_AGAIN else { return false }
            Self.acknowledgeNow(fd)
            let remaining = deadline - ProcessInfo.processInfo.systemUptime
            guard remaining > 0 else {
                logger.info("key exchange deadline passed", metadata: ["peer": "\(peer)"])
                return false
            }
            let writePending = ssh_get_poll_flags(session) & Int32(SSH_WRITE_PENDING) != 0
            var entry = pollfd(fd: fd, events: Int16(POLLIN) | (writePending ? Int16(POLLOUT) : 0), revents: 0)
            if poll(&entry, 1, Int32(min(remaining, 1) * 1000) + 1) < 0 && errno != EINTR { return false }
            if entry.revents & Int16(POLLERR | POLLNVAL) != 0 { return false }
        }
    }

    /// Sends any delayed ACK now and leaves the kernel's delayed-ACK (ping-pong) mode.
    static func acknowledgeNow(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    private func teardown() {
        if let job, exitStatus == nil {
            // The client left before the job ended: stop it, and undo what it half did.
            job.terminate()
            programEnded(nil)
        }
        job = nil
        if let event {
            for fd in registered.keys { ssh_event_remove_fd(event, fd) }
            ssh_event_remove_session(event, session)
            ssh_event_free(event)
        }
        if let channel { ssh_channel_free(channel) }
        ssh_disconnect(session)
        removePacketLedger()
        ssh_free(session)
        server.connectionEnded(place: place)
        let ms = Int(Date().timeIntervalSince(startedAt) * 1000)
        if principal != nil || commandLine != "-" {
            logger.info("session", metadata: [
                "peer": "\(peer)", "user": "\(principal?.name ?? "-")", "key": "\(principal?.keyFingerprint ?? "-")",
                "command": "\(commandLine.prefix(200))", "status": "\(exitStatus.map(String.init) ?? "-")",
                "ms": "\(ms)", "in": "\(bytesIn)", "out": "\(bytesOut)",
            ])
        }
    }

    // MARK: Callbacks (record only; no I/O beyond libssh's own)

    private var unmanagedSelf: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    private static func from(_ userdata: UnsafeMutableRawPointer?) -> SSHConnection {
        Unmanaged<SSHConnection>.fromOpaque(userdata!).takeUnretainedValue()
    }

    private func installServerCallbacks() {
        serverCallbacks.pointee.size = MemoryLayout<ssh_server_callbacks_struct>.size
        serverCallbacks.pointee.userdata = unmanagedSelf
        serverCallbacks.pointee.auth_pubkey_function = { _, _, key, state, userdata in
            SSHConnection.from(userdata).authenticate(key: key, state: Int32(state))
        }
        serverCallbacks.pointee.channel_open_request_session_function = { _, userdata in
            SSHConnection.from(userdata).openChannel()
        }
        ssh_set_server_callbacks(session, serverCallbacks)
    }

    /// Public key authentication. libssh has already checked the signature when
    /// `state` is VALID; a NONE probe only asks whether the key would be accepted.
    private func authenticate(key: ssh_key?, state: Int32) -> Int32 {
        authCallbacks += 1
        // This request is among the failed ones until answered: deny past the cap.
        if failedAuthAttempts > server.options.maxAuthAttempts {
            tooManyFailures()
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
        guard let key, let base64 = Self.base64(of: key), let user = try? server.core.users.owner(ofKeyBase64: base64) else {
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
        switch state {
        case Int32(SSH_PUBLICKEY_STATE_NONE.rawValue):
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        case Int32(SSH_PUBLICKEY_STATE_VALID.rawValue):
            // One login per connection (libssh's packet filter refuses a second one too).
            guard self.state.awaitsAuthentication else { return Int32(SSH_AUTH_DENIED.rawValue) }
            guard let place = server.admitSession(for: user) else {
                disconnectRequested = true
                return Int32(SSH_AUTH_DENIED.rawValue)
            }
            self.place = place
            // Bind the session to the key of *this* call, never an earlier probe's.
            let fingerprint = (try? PublicKey(line: "\(String(cString: ssh_key_type_to_char(ssh_key_type(key)))) \(base64)").fingerprint)
            principal = Principal(identity: .user(user), channel: "ssh", keyFingerprint: fingerprint)
            keyBase64 = base64
            _ = self.state.authenticate()
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        default:
            return Int32(SSH_AUTH_DENIED.rawValue)
        }
    }

    // MARK: What libssh does not tell its callbacks

    /// libssh ≥ 0.9 and < 0.13 lay out the start of a message as shim.h's stand-in expects.
    private static let canReplyForLibssh: Bool = {
        func version(_ major: Int32, _ minor: Int32) -> Int32 { (major << 16) | (minor << 8) }
        return ssh_version(version(0, 9)) != nil && ssh_version(version(0, 13)) == nil
    }()

    /// libssh's log level, callback and userdata are per thread: this thread's log now
    /// feeds this session's ledger (packet types and sizes) and nothing else.
    private func installPacketLedger() {
        ssh_set_log_callback(slipway_packet_ledger_log)
        ssh_set_log_userdata(UnsafeMutableRawPointer(ledger))
        ssh_set_log_level(Int32(SSH_LOG_PACKET))
        ledgerInstalled = true
    }

    private func removePacketLedger() {
        guard ledgerInstalled else { return }
        ssh_set_log_level(Int32(SSH_LOG_NOLOG))
        ssh_set_log_userdata(nil)
        ledgerInstalled = false
    }

    /// Failed tries: every USERAUTH_REQUEST that got neither PK_OK nor SUCCESS, those
    /// libssh dropped included (bad signatures never reach `authenticate`).
    private var failedAuthAttempts: Int {
        let requests = max(Int(ledger.pointee.auth_requests), authCallbacks)
        return requests - Int(ledger.pointee.pk_ok_replies) - Int(ledger.pointee.success_replies)
    }

    /// libssh 0.10 drops a request whose signature fails to verify (or whose algorithm
    /// it refuses, or whose key it cannot parse) without a reply, so a client waits
    /// forever and an attacker tries signatures for free. After each poll, every
    /// request still unanswered gets USERAUTH_FAILURE here and counts as a failure.
    private func answerDroppedAuthRequests() {
        let unanswered = Int(ledger.pointee.auth_requests) - Int(ledger.pointee.auth_replies)
        for _ in 0..<max(0, unanswered) {
            guard Self.canReplyForLibssh, slipway_reply_auth_failure(session) == SSH_OK else {
                disconnectRequested = true
                return
            }
        }
        if failedAuthAttempts >= server.options.maxAuthAttempts { tooManyFailures() }
    }

    private func tooManyFailures() {
        if !disconnectRequested {
            logger.info("too many authentication failures", metadata: ["peer": "\(peer)", "failures": "\(failedAuthAttempts)"])
            ssh_session_set_disconnect_message(session, "Too many authentication failures")
        }
        disconnectRequested = true
    }

    private static func base64(of key: ssh_key) -> String? {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        return String(cString: b64)
    }

    /// One session channel per connection, with its callbacks installed before
    /// it is returned, so no request can arrive ahead of its handler.
    private func openChannel() -> ssh_channel? {
        guard state.phase == .authenticated, let new = ssh_channel_new(session) else { return nil }
        let cb = channelCallbacks
        cb.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
        cb.pointee.userdata = unmanagedSelf
        cb.pointee.channel_data_function = { _, _, data, length, _, userdata in
            SSHConnection.from(userdata).receive(data, Int(length))
        }
        cb.pointee.channel_eof_function = { _, _, userdata in _ = SSHConnection.from(userdata).state.receiveEOF() }
        cb.pointee.channel_close_function = { _, _, userdata in _ = SSHConnection.from(userdata).state.receiveClose() }
        cb.pointee.channel_exec_request_function = { _, _, command, userdata in
            SSHConnection.from(userdata).exec(command)
        }
        cb.pointee.channel_shell_request_function = { _, _, userdata in
            SSHConnection.from(userdata).start(.shell)
        }
        cb.pointee.channel_env_request_function = { _, _, name, value, userdata in
            SSHConnection.from(userdata).setEnvironment(name.map { String(cString: $0) }, value.map { String(cString: $0) })
        }
        cb.pointee.channel_pty_request_function = { _, _, term, width, height, _, _, userdata in
            SSHConnection.from(userdata).requestTerminal(term.map { String(cString: $0) }, Int(width), Int(height))
        }
        cb.pointee.channel_pty_window_change_function = { _, _, width, height, _, _, userdata in
            SSHConnection.from(userdata).terminal?.resize(columns: Int(width), rows: Int(height))
            return 0
        }
        // Subsystems (sftp), x11 and agent forwarding: no handler, so libssh refuses them.
        ssh_set_channel_callbacks(new, cb)
        _ = state.openChannel()
        channel = new
        return new
    }

    /// Consumes as much client data as the buffer has room for; the rest stays in
    /// libssh's channel buffer and is drained by `pump()`.
    private func receive(_ data: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard let data else { return 0 }
        // Data after the client's EOF or close breaks the protocol: taken and dropped.
        guard state.mayReceiveData() else { return Int32(length) }
        let take = min(length, max(0, Self.inboundCapacity - inboundCount))
        inbound.append(contentsOf: UnsafeRawBufferPointer(start: data, count: take))
        bytesIn += take
        if take > 0 { lastActivity = Date() }
        return Int32(take)
    }

    /// No real pty is made: `run` hands the terminal to its container, and the
    /// other commands' output gets CR LF line ends for the client's raw-mode terminal.
    private func requestTerminal(_ type: String?, _ columns: Int, _ rows: Int) -> Int32 {
        guard state.requestTerminal() else { return -1 }
        let type = type.flatMap { $0.isEmpty || $0.utf8.count > 64 || !$0.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._+".contains($0)) }) ? nil : $0 }
        terminal = Terminal(type: type ?? "xterm", columns: columns, rows: rows)
        return 0
    }

    /// Only `GIT_PROTOCOL` (git protocol v2) is accepted, with a plain value.
    private func setEnvironment(_ name: String?, _ value: String?) -> Int32 {
        guard state.maySetEnvironment(), name == "GIT_PROTOCOL", let value, (1...64).contains(value.utf8.count),
              value.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || "0123456789=:.,-".unicodeScalars.contains($0)) }) else {
            return -1
        }
        gitProtocol = value
        return 0
    }

    /// What the client asked the channel to run.
    private enum Request {
        case exec(String)
        case shell
        /// An exec string that cannot be taken as text: refused, nothing runs.
        case refused(UserFacingError)
    }

    /// The exec request's command, taken only if it is exactly the UTF-8 text it claims.
    private func exec(_ raw: UnsafePointer<CChar>?) -> Int32 {
        guard let raw else { return -1 }
        commandLine = String(cString: raw)
        // libssh hands over a C string: a NUL cuts it short unnoticed. The packet's own
        // length tells: type, recipient channel, "exec", want-reply, then the command.
        let expectedPayload = 1 + 4 + (4 + 4) + 1 + (4 + strlen(raw))
        if ledgerInstalled, ledger.pointee.last_type == 98, Int(ledger.pointee.last_payload) != expectedPayload {
            return start(.refused(.invalid("the command contains a NUL byte; send the command as text without NUL bytes")))
        }
        guard let command = String(validatingCString: raw) else {
            return start(.refused(.invalid("the command is not valid UTF-8; send names and values as UTF-8 text")))
        }
        return start(.exec(command))
    }

    /// Starts the channel's one job.
    private func start(_ request: Request) -> Int32 {
        guard state.start() else { return -1 }
        if case .shell = request { commandLine = "(shell)" }
        lastActivity = Date()
        do {
            job = try makeJob(request)
        } catch {
            job = try? errorJob(UserFacingError.invalid("cannot start the command: \(error)"))
        }
        return job == nil ? -1 : 0
    }

    /// The session's user as the database has it now. The identity is not fixed at
    /// login: a user removed, or a key removed or moved to someone else, since then
    /// gets a refusal here, before anything runs.
    private func currentPrincipal() throws -> Principal? {
        guard let principal, let keyBase64 else { return nil }
        guard let user = try server.core.users.owner(ofKeyBase64: keyBase64), user.id == principal.userID else { return nil }
        let current = Principal(identity: .user(user), channel: "ssh", keyFingerprint: principal.keyFingerprint)
        self.principal = current
        return current
    }

    // MARK: Jobs

    private func makeJob(_ request: Request) throws -> ChannelJob {
        guard let principal = try currentPrincipal() else {
            let key = self.principal?.keyFingerprint ?? "of this connection"
            return try errorJob(.denied("the key \(key) is no longer registered to \(self.principal?.name ?? "you") (removed since this connection logged in); nothing was run. Reconnect with a registered key, or ask an admin to add one with ssh-keys:add"))
        }
        switch place?.admission {
        case .overCapacity?:
            return try errorJob(.conflict("the server is at its limit of \(server.options.maxSessions) concurrent sessions; try again in a moment"))
        case .overUserLimit(let open)?:
            return try errorJob(.conflict("\(principal.name) already has \(open) SSH sessions open, the most one user may have at once "
                + "(max_sessions_per_user = \(server.options.maxSessionsPerUser)); nothing was run. End one (a `logs -t`, an idle `ssh -N`) and try again"))
        case .admitted?, nil: break
        }
        let command: String?
        switch request {
        case .refused(let error): return try errorJob(error)
        case .exec(let text): command = text
        case .shell: command = nil
        }
        let words: [String]
        do {
            words = try command.map(ShellWords.split) ?? []
        } catch let error as UserFacingError {
            return try errorJob(error)
        }
        let environment = gitProtocol.map { ["GIT_PROTOCOL": $0] } ?? [:]
        switch server.runner.job(for: words, as: principal, environment: environment) {
        case .spawn(let spawn):
            onEnd = spawn.finished
            do {
                return try ChannelJob.spawn(spawn.argv, environment: spawn.environment)
            } catch {
                programEnded(nil)
                throw error
            }
        case .inProcess(let wantsTerminal, let run):
            let terminal = self.terminal
            if wantsTerminal {
                return try ChannelJob.worker { run($0, $1, $2, $3, terminal) }
            }
            // The client's terminal (if it asked for one) is in raw mode: lines get CR LF.
            return try ChannelJob.worker { input, out, err, cancellation in
                run(input, RawModeOutput.wrap(out, for: terminal), RawModeOutput.wrap(err, for: terminal), cancellation, nil)
            }
        }
    }

    /// A job that only prints `error: ...` and exits with the error's status.
    private func errorJob(_ error: UserFacingError) throws -> ChannelJob {
        try ChannelJob.worker { _, _, err, _ in
            err.write("\(error)\n")
            return error.exitCode
        }
    }

    /// Tells a spawned program's command that it is over (status nil: stopped).
    private func programEnded(_ status: Int32?) {
        guard let onEnd else { return }
        self.onEnd = nil
        do {
            try onEnd(status)
        } catch {
            logger.error("after the command's program ended", metadata: ["command": "\(commandLine.prefix(200))", "error": "\(error)"])
        }
    }

    // MARK: Pumping bytes (after each poll)

    private func pump() {
        guard let channel, let job else { return }
        if ssh_channel_is_eof(channel) != 0 { _ = state.receiveEOF() }
        // Drain, feed, and drain again: feeding made room for what libssh still holds.
        drainChannel(channel)
        feedStdin(job, channel)
        drainChannel(channel)
        feedStdin(job, channel)
        pumpOutput(job, channel, stderr: false)
        pumpOutput(job, channel, stderr: true)

        if job.completionFD >= 0, ready.contains(job.completionFD) {
            ready.remove(job.completionFD)
            job.reap()
        }
        if let status = job.exitStatus, exitSentAt == nil {
            jobEndedAt = jobEndedAt ?? Date()
            // A grandchild may hold the pipes open after the job ended: give it 2 s.
            if job.stdoutFD >= 0 || job.stderrFD >= 0, Date().timeIntervalSince(jobEndedAt!) > 2 {
                job.closeOutput(stderr: false)
                job.closeOutput(stderr: true)
            }
            if job.stdoutFD < 0 && job.stderrFD < 0 { finish(channel, status: status) }
        }
        uncork()
        updateRegistrations(job, channel)
    }

    /// Holds what this pump writes to the socket until `uncork()`, so that output and
    /// the final exit-status, EOF and close leave in as few segments as possible
    /// (the socket has TCP_NODELAY: without the cork every message is a segment).
    private func cork() {
        guard !corked else { return }
        var one: Int32 = 1
        setsockopt(ssh_get_fd(session), Int32(IPPROTO_TCP), TCP_CORK, &one, socklen_t(MemoryLayout<Int32>.size))
        corked = true
    }

    private func uncork() {
        guard corked else { return }
        var zero: Int32 = 0
        setsockopt(ssh_get_fd(session), Int32(IPPROTO_TCP), TCP_CORK, &zero, socklen_t(MemoryLayout<Int32>.size))
        corked = false
    }

    /// Bytes libssh kept because the data callback's buffer was full are re-delivered
    /// only with the next packet; if the client's window is used up none comes. So
    /// read them here while there is room (which also re-opens the window).
    private func drainChannel(_ channel: ssh_channel) {
        while inboundCount < Self.inboundCapacity, ssh_channel_is_open(channel) != 0 {
            let room = min(scratch.count, Self.inboundCapacity - inboundCount)
            let n = scratch.withUnsafeMutableBytes { ssh_channel_read_nonblocking(channel, $0.baseAddress, UInt32(room), 0) }
            guard n > 0 else { break }
            inbound.append(contentsOf: scratch[0..<Int(n)])
            bytesIn += Int(n)
            lastActivity = Date()
        }
    }

    private func feedStdin(_ job: ChannelJob, _ channel: ssh_channel) {
        guard job.stdinFD >= 0 else { clearInbound(); return }
        while inboundCount > 0 {
            let n = inbound.withUnsafeBytes { write(job.stdinFD, $0.baseAddress! + inboundStart, $0.count - inboundStart) }
            if n > 0 { consumeInbound(n); continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            clearInbound()  // the job stopped reading (EPIPE)
            job.closeStdin()
            return
        }
        // The client's EOF can arrive while its last bytes still sit in libssh's channel
        // buffer (ours was full): close the job's stdin only once those are delivered too.
        if state.clientEOF && ssh_channel_poll(channel, 0) <= 0 { job.closeStdin() }
    }

    private func consumeInbound(_ n: Int) {
        inboundStart += n
        if inboundStart == inbound.count { clearInbound() }
        // Reclaim the front now and then, not at every write.
        else if inboundStart >= Self.inboundCapacity / 2 { inbound.removeFirst(inboundStart); inboundStart = 0 }
    }

    private func clearInbound() {
        inbound.removeAll(keepingCapacity: true)
        inboundStart = 0
    }

    /// Moves job output to the channel, never more than the client's window allows:
    /// libssh 0.10 has no window-adjust callback, so a full window means "stop
    /// polling this fd" until a later poll shows the window open again.
    private func pumpOutput(_ job: ChannelJob, _ channel: ssh_channel, stderr: Bool) {
        for _ in 0..<16 {
            let fd = stderr ? job.stderrFD : job.stdoutFD
            guard fd >= 0, ready.contains(fd) else { return }
            let window = Int(ssh_channel_window_size(channel))
            guard window > 0 else { return }
            let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, min(window, $0.count)) }
            if n == 0 {
                ready.remove(fd)
                job.closeOutput(stderr: stderr)
                return
            }
            if n < 0 {
                if errno == EINTR { continue }
                ready.remove(fd)
                if errno != EAGAIN { job.closeOutput(stderr: stderr) }
                return
            }
            cork()
            var offset = 0
            while offset < n {
                let written = scratch[offset..<n].withUnsafeBytes { bytes in
                    stderr ? ssh_channel_write_stderr(channel, bytes.baseAddress, UInt32(bytes.count))
                           : ssh_channel_write(channel, bytes.baseAddress, UInt32(bytes.count))
                }
                if written <= 0 { disconnectRequested = true; return }
                offset += Int(written)
            }
            bytesOut += n
            lastActivity = Date()
        }
    }

    /// Close order: job reaped and drained, then exit-status, EOF, close.
    private func finish(_ channel: ssh_channel, status: Int32) {
        programEnded(status)
        _ = state.finish()
        exitStatus = status
        cork()
        ssh_channel_request_send_exit_status(channel, Int32(status))
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
        exitSentAt = Date()
        // The idle clock starts again when the command ends, not when it last spoke.
        lastActivity = exitSentAt!
    }

    /// Polls exactly the fds that can make progress now.
    private func updateRegistrations(_ job: ChannelJob, _ channel: ssh_channel) {
        guard let event else { return }
        let windowOpen = ssh_channel_window_size(channel) > 0
        var wanted: [Int32: Int16] = [:]
        if windowOpen {
            if job.stdoutFD >= 0 { wanted[job.stdoutFD] = Int16(POLLIN) }
            if job.stderrFD >= 0 { wanted[job.stderrFD] = Int16(POLLIN) }
        }
        if job.completionFD >= 0 { wanted[job.completionFD] = Int16(POLLIN) }
        if job.stdinFD >= 0 && inboundCount > 0 { wanted[job.stdinFD] = Int16(POLLOUT) }
        for (fd, events) in registered where wanted[fd] != events {
            ssh_event_remove_fd(event, fd)
            registered[fd] = nil
        }
        for (fd, events) in wanted where registered[fd] == nil {
            ssh_event_add_fd(event, fd, events, { fd, _, userdata in
                SSHConnection.from(userdata).ready.insert(fd)
                return 0
            }, unmanagedSelf)
            registered[fd] = events
        }
        // A closed fd's number may come back for something else.
        ready.formIntersection([job.stdoutFD, job.stderrFD, job.completionFD].filter { $0 >= 0 })
    }
}

/// Output for a client whose terminal is in raw mode (it asked for a pty that
/// only `run` uses): LF becomes CR LF, as a pty's line discipline would do.
struct RawModeOutput: TextOutput {
    let base: TextOutput

    static func wrap(_ output: TextOutput, for terminal: Terminal?) -> TextOutput {
        terminal == nil ? output : RawModeOutput(base: output)
    }

    func write(_ text: String) { base.write(text.replacingOccurrences(of: "\n", with: "\r\n")) }

    func write(bytes: Data) -> Bool {
        var converted = Data(capacity: bytes.count + bytes.count / 16)
        for byte in bytes {
            if byte == UInt8(ascii: "\n") { converted.append(UInt8(ascii: "\r")) }
            converted.append(byte)
        }
        return base.write(bytes: converted)
    }
}
