import AsyncHTTPClient
import Foundation
import NIOCore
import SlipwayCore

/// Health-check GETs through AsyncHTTPClient.
public struct AsyncHTTPProbe: HTTPProbe {
    public init() {}

    public func get(_ url: String, timeout: TimeInterval) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "slipway-check")
        let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        var body = ByteBuffer()
        for try await var chunk in response.body {
            body.writeBuffer(&chunk)
            if body.readableBytes > 64 * 1024 { break }
        }
        return (Int(response.status.code), String(buffer: body))
    }
}
