import Foundation
import Testing
@testable import SlipwayCore

/// `ProcessRunner.run`: output and status, and its timeout (the ACME client's only
/// guard against a CA that never answers).
@Suite("ProcessRunner")
struct ProcessRunnerTests {
    @Test func itReturnsTheStatusAndBothOutputs() throws {
        let result = try ProcessRunner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 10)
        #expect(result.status == 3 && result.stdout == "out\n" && result.stderr == "err\n")
    }

    @Test func aProgramPastItsTimeoutIsStoppedWithWhatItWrote() throws {
        let started = Date()
        do {
            _ = try ProcessRunner.run("/bin/sh", ["-c", "echo partial; echo why >&2; exec sleep 30"], timeout: 0.5)
            Issue.record("a 30 s sleep ended within its 0.5 s timeout")
        } catch let stopped as ProcessRunner.TimedOut {
            #expect(stopped.stdout == "partial\n" && stopped.stderr == "why\n" && stopped.seconds == 0.5)
        }
        #expect(Date().timeIntervalSince(started) < 5)
    }

    /// A grandchild keeps the pipes open after the program is stopped: `run` returns anyway.
    @Test func aGrandchildHoldingTheOutputDoesNotHoldTheCaller() throws {
        let started = Date()
        var grandchild: pid_t?
        defer { if let grandchild { kill(grandchild, SIGKILL) } }
        do {
            _ = try ProcessRunner.run("/bin/sh", ["-c", "sleep 30 & echo $!; wait"], timeout: 0.5)
            Issue.record("the program ended within its timeout")
        } catch let stopped as ProcessRunner.TimedOut {
            grandchild = pid_t(stopped.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(grandchild != nil, "\(stopped.stdout)")
        }
        // 0.5 s, 2 s for SIGTERM, at most a second each for the exit and the output.
        #expect(Date().timeIntervalSince(started) < 8)
    }

    /// What Foundation's `Process.run()` crashed on (a scan of /proc/self/fd reading past
    /// its buffer): thousands of open descriptors and spawns from many threads at once.
    /// Every child gets exactly fds 0-2 of ours, no matter what is open.
    @Test func manyThreadsSpawnWithThousandsOfDescriptorsOpenAndNoneLeaksIn() throws {
        var extra: [Int32] = []
        defer { extra.forEach { close($0) } }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let wanted = min(3000, Int(limit.rlim_cur) - 200)
        while extra.count < wanted {
            let fd = open("/dev/null", O_RDONLY)  // not close-on-exec: only the spawn keeps it out
            guard fd >= 0 else { break }
            extra.append(fd)
        }
        #expect(extra.count >= min(wanted, 1000), "only \(extra.count) descriptors opened")
        let outputs = Outputs()
        DispatchQueue.concurrentPerform(iterations: 400) { index in
            do {
                let result = try ProcessRunner.run("/bin/sh", ["-c", "ls /proc/self/fd; echo $1", "sh", "\(index)"], timeout: 30)
                outputs.add(index, result.stdout)
            } catch {
                outputs.add(index, "failed: \(error)")
            }
        }
        for (index, text) in outputs.all {
            // 0-2, and the descriptor ls opens to read the directory.
            let fds = text.split(separator: "\n").dropLast().compactMap { Int($0) }
            #expect(fds.filter { $0 > 2 }.count <= 1 && text.hasSuffix("\(index)\n"), "child \(index): \(text)")
        }
        #expect(outputs.all.count == 400)
    }

    /// The server ignores SIGPIPE and may block signals on its threads: a child gets
    /// every signal back at its default and none blocked (git in a pipeline, tar).
    @Test func aChildStartsWithDefaultSignalsAnEnvironmentAndADirectory() throws {
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        let directory = FileManager.default.temporaryDirectory.path
        let result = try ProcessRunner.run("/bin/sh", ["-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status; pwd; echo \"$ONLY\" \"${HOME:-none}\""],
                                           environment: ["ONLY": "this"], currentDirectory: directory, timeout: 10)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(result.stdout)")
        // The standard signals, 1-31 (glibc keeps two real-time ones of its own, 33-34).
        func standardSignals(_ name: String) -> UInt64? {
            lines.first { $0.hasPrefix(name + ":") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }.map { $0 & 0x7fff_ffff }
        }
        #expect(standardSignals("SigIgn") == 0 && standardSignals("SigBlk") == 0, "\(result.stdout)")
        #expect(lines.dropFirst(2).first == URL(fileURLWithPath: directory).resolvingSymlinksInPath().path || lines.dropFirst(2).first == directory)
        #expect(lines.last == "this none")
    }

    /// Foundation's `Process` stays out of the server and the tests (see ChildProcess.swift).
    @Test func nothingStartsAProgramThroughFoundationsProcess() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        var found: [String] = []
        for folder in ["Sources", "Tests"] {
            for file in try FileManager.default.subpathsOfDirectory(atPath: root + "/" + folder) where file.hasSuffix(".swift") {
                let lines = try String(contentsOfFile: "\(root)/\(folder)/\(file)", encoding: .utf8).split(separator: "\n")
                for line in lines where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                    if line.range(of: #"(?<![A-Za-z])Process\(\)|Foundation\.Process\b"#, options: .regularExpression) != nil {
                        found.append("\(folder)/\(file): \(line.trimmingCharacters(in: .whitespaces))")
                    }
                }
            }
        }
        #expect(found.isEmpty, "use ProcessRunner or ChildProcess:\n\(found.joined(separator: "\n"))")
    }

    @Test func aMissingProgramIsAnErrorNamingIt() {
        #expect { try ProcessRunner.run("/nonexistent/tool", []) } throws: { error in
            "\(error.localizedDescription)".contains("cannot start /nonexistent/tool: No such file or directory")
        }
    }
}

private final class Outputs: @unchecked Sendable {
    private let lock = NSLock()
    private var byIndex: [Int: String] = [:]
    func add(_ index: Int, _ text: String) { lock.withLock { byIndex[index] = text } }
    var all: [(Int, String)] { lock.withLock { byIndex.sorted { $0.key < $1.key } } }
}
