import Foundation
import Testing
@testable import SlipwayCore

/// A build whose step the engine's runtime lost to a SIGKILL from outside, or whose
/// cache lookup lost an image to a removal, is tried again, at most twice; a build that
/// failed on its own (or by its memory limit) is not.
@Suite("A build killed from outside is tried again")
struct BuildRetryTests {
    static let killed = "building at STEP \"RUN make\": while running runtime: signal: killed"
    static let outOfMemory = "building at STEP \"RUN make\": while running runtime: exit status 137"

    func build(_ failures: [String]) -> (attempts: Int, error: String?, lines: [String]) {
        let engine = FakeEngine()
        engine.buildFailures = failures
        let lines = Lines()
        var error: String?
        do {
            try BuildService.runBuild(BuildRequest(contextTarFile: "/nonexistent", tag: "slipway/web:1"), on: engine, pause: 0, output: { lines.append($0) })
        } catch let failure as UserFacingError {
            error = failure.message
        } catch {
            Issue.record("unexpected \(error)")
        }
        return (engine.calls.filter { $0.hasPrefix("build ") }.count, error, lines.all)
    }

    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    /// podman's cache lookup read an image another app's prune removed meanwhile (ci26).
    static let lostLayer = "checking if cached image exists from a previous build: getting top layer info: layer not known"

    @Test(arguments: [
        (killed, "-----> The engine's build step was killed from outside (not by a limit); building again"),
        (lostLayer, "-----> The engine lost a cached image to a removal meanwhile; building again"),
    ])
    func anEnginesOwnFailureIsBuiltAgainAtMostTwice(failure: String, notice: String) {
        let once = build([failure])
        #expect(once.attempts == 2 && once.error == nil, "\(once)")
        #expect(once.lines == [notice + " (try 2 of 3)"])
        let twice = build([failure, failure])
        #expect(twice.attempts == 3 && twice.error == nil && twice.lines == [notice + " (try 2 of 3)", notice + " (try 3 of 3)"], "\(twice)")
        let thrice = build([failure, failure, failure])
        #expect(thrice.attempts == 3 && thrice.error == "the build failed: " + failure, "\(thrice)")
    }

    @Test func otherFailuresAreNotRetried() {
        // The last two from a hostile app: its own step's text carries the engine's words.
        for failure in [Self.outOfMemory, "building at STEP \"RUN false\": while running runtime: exit status 1",
                        "building at STEP \"RUN echo ': while running runtime: signal: killed'; false\": while running runtime: exit status 1",
                        "building at STEP \"RUN echo layer not known; false\": while running runtime: exit status 1"] {
            let result = build([failure])
            #expect(result.attempts == 1 && result.error == "the build failed: " + failure && result.lines.isEmpty, "\(result)")
        }
    }
}
