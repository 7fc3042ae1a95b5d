import Foundation
import Testing
@testable import SlipwaySSH

/// The line of clients waiting for a handshake place, without sockets: bounded, in
/// the order they joined, and each gone at its own deadline from accept.
@Suite("SSH handshake line")
struct HandshakeLineTests {
    @Test func fullLineRefusesNewcomersAndServesInTheOrderJoined() {
        var line = HandshakeLine(capacity: 3)
        let joined = [line.join(10, acceptedAt: 5), line.join(11, acceptedAt: 1), line.join(12, acceptedAt: 6), line.join(13, acceptedAt: 7)]
        #expect(joined == [true, true, true, false], "a fourth joined a line of three")
        #expect(line.count == 3)
        let first = line.next()?.fd, second = line.next()?.fd
        #expect(first == 10 && second == 11)
        let rejoined = line.join(13, acceptedAt: 7)
        #expect(rejoined && line.entries.map(\.fd) == [12, 13])
    }

    @Test func eachLeavesAtItsDeadlineFromAcceptNotFromJoining() {
        var line = HandshakeLine(capacity: 10)
        // 11 was accepted first but spoke (joined) last: its deadline comes first.
        _ = line.join(10, acceptedAt: 5)
        _ = line.join(11, acceptedAt: 1)
        #expect(line.nextExpiry(timeout: 30, at: 20) == 11)
        let firstGone = line.removeExpired(timeout: 30, at: 31)
        #expect(firstGone == [11] && line.entries.map(\.fd) == [10])
        let noneYet = line.removeExpired(timeout: 30, at: 34.9)
        #expect(noneYet.isEmpty)
        let lastGone = line.removeExpired(timeout: 30, at: 35)
        #expect(lastGone == [10] && line.isEmpty)
        #expect(line.nextExpiry(timeout: 30, at: 40) == nil)
    }
}
