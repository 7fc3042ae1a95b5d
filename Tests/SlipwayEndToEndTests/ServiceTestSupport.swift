import Foundation

// Shared by the backing-service suites (PostgresEndToEndTests, ServiceBackupsEndToEndTests).

/// A random service name: services' containers are named `<kind>.NAME` on an engine
/// other test processes share.
func randomServiceName(_ prefix: String) -> String {
    prefix + "-" + String((0..<6).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
}

/// GET `url` with curl: the status (0 when nothing answered) and the body.
func httpGet(_ url: String) throws -> (status: Int, body: String) {
    let result = try run("/usr/bin/curl", ["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", url])
    guard let split = result.out.lastIndex(of: "\n") else { return (0, result.out) }
    return (Int(result.out[result.out.index(after: split)...]) ?? 0, String(result.out[..<split]))
}

/// GETs until the app answers 200 (a restarted service takes a moment to accept).
func httpGetWhenReady(_ url: String, seconds: Double = 60) async throws -> (status: Int, body: String) {
    let until = Date().addingTimeInterval(seconds)
    var answer = try httpGet(url)
    while answer.status != 200, Date() < until {
        try await Task.sleep(for: .seconds(1))
        answer = try httpGet(url)
    }
    return answer
}
