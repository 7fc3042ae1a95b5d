import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// A container may say nothing for as long as it runs (a migration, a `sleep`): waiting
/// for it and following its log must last that long. An HTTP client with a 90 s idle
/// read timeout once failed a quiet deploy task with "HTTPClientError.readTimeout".
/// Its own suite, not serialized: it takes 100 s, beside the others.
@Suite("Container engine: silent containers")
struct SilentContainerTests {
    let engine = DockerEngine.locate(configured: nil)

    @Test func aContainerSilentForLongerThanAReadTimeoutIsFollowedAndWaitedForToItsEnd() async throws {
        _ = try BuilderImage.bootstrap.get()
        var spec = ContainerSpec(image: BuilderImage.reference, command: ["/bin/sh", "-c", "echo start; sleep 100; echo done; exit 3"])
        spec.labels = ["org.slipway.test": UUID().uuidString]
        spec.networkDisabled = true
        let id = try await engine.createContainer(spec)
        defer { Task { [engine] in try? await engine.removeContainer(id, force: true) } }
        try await engine.startContainer(id)
        let collected = Collected()
        async let followed: Void = engine.streamLogs(id, follow: true, tail: nil) { collected.add($0) }
        let status = try await engine.waitContainer(id)
        try await followed
        #expect(status == 3)
        #expect(collected.text(.stdout) == "start\ndone\n")
        try await engine.removeContainer(id, force: true)
    }
}
