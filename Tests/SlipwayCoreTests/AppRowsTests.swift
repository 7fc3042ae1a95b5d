import Foundation
import Testing

/// `AppService` owns the `apps` rows: every lookup of an app by name and every write
/// to an app's row goes through it, so a lookup has one not-found answer and a write
/// one place to keep its invariants.
@Suite("One owner for the apps rows")
struct AppRowsTests {
    @Test func onlyAppServiceReadsOrWritesTheAppsTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        let owners: Set<String> = ["SlipwayCore/Services/AppService.swift", "SlipwayCore/Store/Migrations.swift"]
        let patterns = [#"(?i)\b(from|join|update|into)\s+apps\b"#, #"\bApp\s*\.\s*(fetch|filter|order|delete|select|exists)"#,
                        #"\.(deployBranch|deployedRevision|locked|currentReleaseId|processesStopped)\s*=[^=]"#]
        var checked = 0
        for case let path as String in FileManager.default.enumerator(atPath: sources.path)! where path.hasSuffix(".swift") && !owners.contains(path) {
            let text = try String(contentsOf: sources.appendingPathComponent(path), encoding: .utf8)
            checked += 1
            for pattern in patterns {
                let found = text.range(of: pattern, options: .regularExpression)
                #expect(found == nil, "Sources/\(path) reads or writes apps rows itself (\(found.map { String(text[$0]) } ?? "")); use AppService")
            }
        }
        #expect(checked > 50)
        // The patterns catch what they are for.
        let owner = try String(contentsOf: sources.appendingPathComponent("SlipwayCore/Services/AppService.swift"), encoding: .utf8)
        for pattern in patterns { #expect(owner.range(of: pattern, options: .regularExpression) != nil, "\(pattern) matches nothing in AppService") }
    }
}
