import Foundation
import Testing
@testable import SlipwayCore

/// The bridge from blocking threads to the async engine: its two error paths.
@Suite("Waiting for the engine")
struct WaitForTests {
    struct Transport: Error {}

    @Test func aTransportErrorReachesTheUserAsAnUnavailableEngine() throws {
        let error = #expect(throws: UserFacingError.self) {
            try waitFor(timedOut: "reading web's logs") { () async throws -> Int in throw Transport() }
        }
        #expect(error?.kind == .unavailable)
        #expect(error?.message.hasPrefix("reading web's logs broke off (Transport()); try again") == true, "\(error?.message ?? "")")
    }

    @Test func aUserFacingErrorPassesAsItIs() throws {
        let error = #expect(throws: UserFacingError.self) {
            try waitFor(timeout: .seconds(5)) { () async throws -> Int in throw UserFacingError.invalid("bad input") }
        }
        #expect(error?.message == "bad input")
    }

    @Test func workPastItsTimeoutIsCancelledAndSaysWhatDidNotFinish() throws {
        let cancelled = Flag()
        let error = #expect(throws: UserFacingError.self) {
            try waitFor(timeout: .milliseconds(100), timedOut: "starting web.web.1") { () async throws -> Int in
                do { try await Task.sleep(for: .seconds(30)) } catch { cancelled.set(); throw error }
                return 1
            }
        }
        #expect(error?.message.hasPrefix("starting web.web.1 did not finish within 100 ms") == true, "\(error?.message ?? "")")
        for _ in 0..<200 where !cancelled.isSet { Thread.sleep(forTimeInterval: 0.01) }
        #expect(cancelled.isSet, "the work went on after its timeout")
    }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
