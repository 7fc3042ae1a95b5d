import Foundation
import Testing

/// The SSH front moves bytes: it authenticates and hands command lines to the
/// command runner, and knows no command, workflow or audit rule of its own.
@Suite("The SSH front's shape")
struct FrontShapeTests {
    @Test func theFrontUsesOnlyTheKeyLookupAndTheRunner() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("Sources/SlipwaySSH")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        #expect(files.contains("SSHConnection.swift"))
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            // Services a command or workflow would use, audit writes, and commands by name.
            for forbidden in [".apps.", ".events.", ".deploys.", ".pushes.", ".git.", ".routing.", ".storage.", ".runs.",
                              "audit", "recordFailure", "\"run\"", "receive-pack", "upload-pack", "--as"] {
                #expect(!text.contains(forbidden), "Sources/SlipwaySSH/\(file) contains \(forbidden)")
            }
        }
    }
}
