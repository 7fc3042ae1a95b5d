/// The protocol life of one SSH connection, apart from any socket: what the client
/// has done so far and which of its requests may be acted on now. `SSHConnection`
/// asks here before acting on each request; a refused request changes nothing.
///
/// One login, then one session channel, set up (pty, environment) before its one
/// command (exec or shell) starts; client data until its EOF or close; the exit
/// status once the command ended.
struct SessionState: Equatable {
    enum Phase: Equatable {
        /// Key exchange done; no verified signature yet.
        case unauthenticated
        /// Logged in; no channel yet.
        case authenticated
        /// The session channel is open; a pty and environment may be asked for.
        case channelOpen
        /// The channel's one command runs.
        case running
        /// The command ended and its exit status was sent.
        case finished
    }

    private(set) var phase = Phase.unauthenticated
    /// The client asked for a pty.
    private(set) var terminalRequested = false
    /// The client sent EOF: its stdin is complete.
    private(set) var clientEOF = false
    /// The client closed the channel.
    private(set) var clientClosed = false

    var isAuthenticated: Bool { phase != .unauthenticated }

    /// A verified signature may log in only once per connection.
    var awaitsAuthentication: Bool { phase == .unauthenticated }

    mutating func authenticate() -> Bool {
        guard phase == .unauthenticated else { return false }
        phase = .authenticated
        return true
    }

    /// One session channel per connection, after login.
    mutating func openChannel() -> Bool {
        guard phase == .authenticated else { return false }
        phase = .channelOpen
        return true
    }

    /// One pty, before the command starts.
    mutating func requestTerminal() -> Bool {
        guard phase == .channelOpen, !terminalRequested, !clientClosed else { return false }
        terminalRequested = true
        return true
    }

    /// Environment variables only before the command starts (which variable is taken
    /// is the connection's rule).
    func maySetEnvironment() -> Bool { phase == .channelOpen && !clientClosed }

    /// The one exec or shell of the channel.
    mutating func start() -> Bool {
        guard phase == .channelOpen, !clientClosed else { return false }
        phase = .running
        return true
    }

    /// Client data is taken on an open channel until the client's EOF or close
    /// (before the command starts it waits for it).
    func mayReceiveData() -> Bool {
        (phase == .channelOpen || phase == .running) && !clientEOF && !clientClosed
    }

    mutating func receiveEOF() -> Bool {
        guard phase == .channelOpen || phase == .running, !clientEOF, !clientClosed else { return false }
        clientEOF = true
        return true
    }

    mutating func receiveClose() -> Bool {
        guard phase != .unauthenticated, phase != .authenticated, !clientClosed else { return false }
        clientClosed = true
        return true
    }

    /// The running command ended; its status goes out once.
    mutating func finish() -> Bool {
        guard phase == .running else { return false }
        phase = .finished
        return true
    }
}
