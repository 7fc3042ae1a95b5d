import Testing
@testable import SlipwaySSH

/// The SSH session's protocol state on its own, without sockets: what a client may
/// do in which order, and that a refused request changes nothing.
@Suite("SSH session state")
struct SessionStateTests {
    /// Logged in, channel open.
    func open() -> SessionState {
        var state = SessionState()
        #expect(state.authenticate() == true)
        #expect(state.openChannel() == true)
        return state
    }

    @Test func theOrdinaryLifeOfASession() {
        var state = SessionState()
        #expect(state.phase == .unauthenticated && !state.isAuthenticated && state.awaitsAuthentication)
        #expect(state.authenticate() == true)
        #expect(state.phase == .authenticated && !state.awaitsAuthentication)
        #expect(state.openChannel() == true)
        #expect(state.requestTerminal() == true)
        #expect(state.terminalRequested)
        #expect(state.maySetEnvironment())
        #expect(state.mayReceiveData())  // before the command: buffered for it
        #expect(state.start() == true)
        #expect(state.phase == .running && state.mayReceiveData())
        #expect(state.receiveEOF() == true)
        #expect(state.clientEOF)
        #expect(state.finish() == true)
        #expect(state.phase == .finished)
        #expect(state.receiveClose() == true)
        #expect(state.clientClosed)
    }

    @Test func nothingBeforeLogin() {
        var state = SessionState()
        let before = state
        #expect(state.openChannel() == false)
        #expect(state.requestTerminal() == false)
        #expect(!state.maySetEnvironment())
        #expect(state.start() == false)
        #expect(!state.mayReceiveData())
        #expect(state.receiveEOF() == false)
        #expect(state.receiveClose() == false)
        #expect(state.finish() == false)
        #expect(state == before)
    }

    @Test func oneLoginAndOneChannelPerConnection() {
        var state = SessionState()
        #expect(state.authenticate() == true)
        #expect(state.authenticate() == false)
        // No command before a channel.
        #expect(state.start() == false)
        #expect(state.requestTerminal() == false)
        #expect(state.openChannel() == true)
        #expect(state.openChannel() == false)
        #expect(state.authenticate() == false)
        #expect(state.phase == .channelOpen)
    }

    @Test func oneCommandPerChannel() {
        var state = open()
        #expect(state.start() == true)
        let running = state
        #expect(state.start() == false)  // a second exec, or a shell after an exec
        #expect(state.requestTerminal() == false)  // a pty once the command runs
        #expect(!state.maySetEnvironment())  // environment once the command runs
        #expect(state == running)
        #expect(state.finish() == true)
        #expect(state.finish() == false)  // the exit status goes out once
        #expect(state.start() == false)  // and nothing starts after it
    }

    @Test func onePty() {
        var state = open()
        #expect(state.requestTerminal() == true)
        #expect(state.requestTerminal() == false)
    }

    @Test func noDataAfterEOFOrClose() {
        var state = open()
        #expect(state.start() == true)
        #expect(state.receiveEOF() == true)
        #expect(!state.mayReceiveData())
        #expect(state.receiveEOF() == false)  // a second EOF
        var closed = open()
        #expect(closed.receiveClose() == true)
        #expect(!closed.mayReceiveData())
        #expect(closed.receiveEOF() == false)
        #expect(closed.start() == false)
        #expect(closed.requestTerminal() == false)
        #expect(!closed.maySetEnvironment())
        #expect(closed.receiveClose() == false)
    }

    @Test func anEOFBeforeTheCommandLeavesItAnEmptyStdin() {
        var state = open()
        #expect(state.receiveEOF() == true)
        #expect(state.start() == true)
        #expect(!state.mayReceiveData())
    }
}
