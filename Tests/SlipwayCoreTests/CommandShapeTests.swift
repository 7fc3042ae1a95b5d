import Foundation
import Testing

/// A command parses, makes one core call and prints: a sequence of core calls (a
/// check then a change, a change then another) is a workflow, and belongs in one
/// service method where it can hold its transaction or lock throughout.
@Suite("Commands make one core call")
struct CommandShapeTests {
    /// Commands whose `execute` has two core calls on two exclusive paths, one taken per run.
    static let exclusivePaths: [String: String] = [
        "Resource.Limit": "without values it shows the limits (Resource.printScope), with values it sets them",
        "Resource.Reserve": "without a value it shows the reservation (Resource.printScope), with one it sets it",
        "StorageCommands.List": "with an app it lists the app's mounts, without one the caller's storage",
        "SchedulerCommands.Set": "with --global it sets the default (SchedulerService.set), with an app it switches that app (DeployService.setScheduler)",
    ]

    @Test func everyExecuteMakesOneCoreCall() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("Sources/SlipwayCommands/Commands")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }.sorted()
        var counts: [String: Int] = [:]
        for file in files {
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            counts.merge(Self.coreCalls(in: source)) { a, _ in a }
        }
        // The scanner found the commands (a broken scanner would find none and pass).
        #expect(counts.count > 60, "found only \(counts.count) command bodies")
        #expect(counts["Config.Set"] == 1 && counts["ACL.Remove"] == 1 && counts["Users.Remove"] == 1 && counts["GitCommands.ReceivePack"] == 1)
        for (command, count) in counts.sorted(by: { $0.key < $1.key }) {
            let allowed = Self.exclusivePaths[command] == nil ? 1 : 2
            #expect(count <= allowed, "\(command).execute makes \(count) core calls; move the sequence into one service method")
        }
        for (command, _) in Self.exclusivePaths {
            #expect(counts[command] == 2, "\(command) no longer needs its place in exclusivePaths; remove it")
        }
    }

    @Test func theScannerCountsHelpersAndIgnoresSettings() {
        let source = """
            enum Thing {
                static func check(_ context: CommandContext) throws { try context.core.apps.find(x) }
                static func change(_ text: String) -> Int { text.count }
                struct Set: MutatingCommand {
                    func execute(in context: CommandContext) throws {
                        try Thing.check(context)
                        _ = context.core.settings.dataDir
                        try context.core.deploys.deploy(x) { "\\(y.map { "\\($0)" })" }
                    }
                }
                struct Show: QueryCommand {
                    func execute(in context: CommandContext) throws { _ = Thing.change("a"); try context.core.apps.list() }
                }
            }
            func stop(_ context: CommandContext) { context.core.runs.stop() }
            struct Remove: MutatingCommand {
                func execute(in context: CommandContext) throws { try context.core.users.remove(u); stop(context) }
            }
            """
        #expect(Self.coreCalls(in: source) == ["Thing.Set": 2, "Thing.Show": 1, "Remove": 2])
    }

    // MARK: A small scanner of Swift source (braces in these files balance, strings included)

    struct Scope {
        let name: String
        let body: Range<String.Index>
    }

    /// Core calls (`context.core.<service>`, not `settings`) per command body (`execute`
    /// or `spawn`), keyed by the command's qualified type name, counting those made
    /// through a helper function of the same file.
    static func coreCalls(in source: String) -> [String: Int] {
        let types = declarations(#"\b(?:enum|struct|extension|final class|class)\s+(\w+)"#, in: source)
        let functions = declarations(#"\bfunc\s+(\w+)\s*[(<]"#, in: source)
        func chain(_ position: String.Index) -> [String] {
            types.filter { $0.body.contains(position) }.sorted { $0.body.lowerBound < $1.body.lowerBound }.map(\.name)
        }
        func direct(_ range: Range<String.Index>) -> Int {
            matches(#"context\.core\.(\w+)"#, in: source, range).filter { $0 != "settings" }.count
        }
        // Helpers: functions other than command bodies that call the core, with the type they are in.
        var helpers: [(owner: String?, name: String, count: Int)] = []
        for function in functions where !["execute", "spawn"].contains(function.name) {
            let count = direct(function.body)
            if count > 0 { helpers.append((chain(function.body.lowerBound).last, function.name, count)) }
        }
        var result: [String: Int] = [:]
        for function in functions where ["execute", "spawn"].contains(function.name) {
            let text = String(source[function.body])
            let command = chain(function.body.lowerBound)
            var count = direct(function.body)
            for helper in helpers {
                // `Owner.helper(`, or a bare `helper(` (not after a dot) where it is in scope.
                let qualified = helper.owner.map { text.contains("\($0).\(helper.name)(") } ?? false
                let inScope = helper.owner.map { command.contains($0) } ?? true
                let bare = inScope && text.range(of: #"(?<![\w.])"# + helper.name + #"\("#, options: .regularExpression) != nil
                if qualified || bare { count += helper.count }
            }
            result[command.joined(separator: "."), default: 0] += count
        }
        return result
    }

    /// Each match of `pattern` (group 1: the name) with the body in braces after it.
    static func declarations(_ pattern: String, in source: String) -> [Scope] {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.matches(in: source, range: NSRange(source.startIndex..., in: source)).compactMap { match in
            guard let name = Range(match.range(at: 1), in: source), let end = Range(match.range, in: source)?.upperBound,
                  let open = source[end...].firstIndex(of: "{") else { return nil }
            var depth = 0
            var index = open
            while index < source.endIndex {
                if source[index] == "{" { depth += 1 }
                if source[index] == "}" { depth -= 1; if depth == 0 { break } }
                index = source.index(after: index)
            }
            guard index < source.endIndex else { return nil }
            return Scope(name: String(source[name]), body: source.index(after: open)..<index)
        }
    }

    static func matches(_ pattern: String, in source: String, _ range: Range<String.Index>) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.matches(in: source, range: NSRange(range, in: source)).compactMap { Range($0.range(at: 1), in: source).map { String(source[$0]) } }
    }
}
