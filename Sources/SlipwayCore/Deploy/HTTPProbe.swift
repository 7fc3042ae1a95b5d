import Foundation

/// One HTTP GET for health checks; `SlipwayEngine.AsyncHTTPProbe` does it with AsyncHTTPClient.
public protocol HTTPProbe: Sendable {
    /// The answer's status and (up to 64 KiB of) body; throws when nothing answers in time.
    func get(_ url: String, timeout: TimeInterval) async throws -> (status: Int, body: String)
}
