import Foundation
import SlipwayCore
import Testing
@testable import SlipwayCore

@Suite("Domain values are validated when they are made")
struct DomainTests {
    @Test(arguments: ["web", "a", "my-app-2", "0x", String(repeating: "a", count: 63)])
    func validAppNames(_ name: String) throws {
        #expect(try AppName(name).rawValue == name)
    }

    @Test(arguments: ["", "Web", "-web", "web-", "we b", "web;id", "../etc", "web.git", "wéb", String(repeating: "a", count: 64), "a\nb"])
    func invalidAppNames(_ name: String) {
        #expect(throws: UserFacingError.self) { try AppName(name) }
    }

    @Test func invalidNameErrorsQuoteControlCharacters() throws {
        let error = #expect(throws: UserFacingError.self) { try UserName("bad\nname") }
        #expect(error?.message.contains("\"bad\\nname\"") == true)
        #expect(error?.kind == .invalidInput)
    }

    @Test func userNames() throws {
        #expect(try UserName("alice").rawValue == "alice")
        #expect(try UserName("bob-2").rawValue == "bob-2")
        for bad in ["2bob", "Bob", "", "a_b", String(repeating: "a", count: 33)] {
            #expect(throws: UserFacingError.self) { try UserName(bad) }
        }
    }

    @Test func envKeys() throws {
        for good in ["A", "_x", "DATABASE_URL", "a1"] { #expect(try EnvKey(good).rawValue == good) }
        for bad in ["1A", "A-B", "", "A B", "A=B", "É"] {
            #expect(throws: UserFacingError.self) { try EnvKey(bad) }
        }
    }

    @Test func keyAndStorageNames() throws {
        #expect(try KeyName("alice@laptop.local").rawValue == "alice@laptop.local")
        #expect(throws: UserFacingError.self) { try KeyName("a/b") }
        #expect(throws: UserFacingError.self) { try KeyName(".hidden") }
        #expect(try StorageName("uploads-1").rawValue == "uploads-1")
        #expect(throws: UserFacingError.self) { try StorageName("Uploads") }
        #expect(throws: UserFacingError.self) { try StorageName("../x") }
    }

    @Test func containerPathsAreNormalised() throws {
        #expect(try AbsolutePath("/app//data/", kind: "container path").rawValue == "/app/data")
        #expect(try AbsolutePath("/app/./data", kind: "container path").rawValue == "/app/data")
        for bad in ["app/data", "/app/../etc", "/", "//", "/a:b", "/a,b", "/a\nb", "", "/../x"] {
            #expect(throws: UserFacingError.self, "\(bad)") { try AbsolutePath(bad, kind: "container path") }
        }
    }

    @Test func mountSpecs() throws {
        let storage = try MountSpec("uploads:/app/uploads")
        #expect(storage.source == .storage(try StorageName("uploads")))
        #expect(storage.containerPath.rawValue == "/app/uploads")
        let host = try MountSpec("/srv/data:/data")
        #expect(host.source == .hostPath(try AbsolutePath("/srv/data", kind: "host path")))
        for bad in ["uploads", "uploads:relative", "../x:/a", "/etc/../x:/a", "up:/a/../b", "up:/proc", "up:/dev/shm", "up:/sys/fs", "up:/./proc"] {
            #expect(throws: UserFacingError.self, "\(bad)") { try MountSpec(bad) }
        }
    }

    /// The engine's own mount points get a message instead of the engine's raw 409.
    @Test func kernelFilesystemsAreNotMountPoints() throws {
        let error = #expect(throws: UserFacingError.self) { try MountSpec("uploads:/proc/x") }
        #expect(error?.message.contains("/proc belongs to the container's kernel filesystems") == true)
        #expect(try MountSpec("uploads:/procedures").containerPath.rawValue == "/procedures")
    }

    @Test func phases() throws {
        #expect(try MountPhase.parseList("run,deploy") == [.run, .deploy])
        #expect(MountPhase.format([.run, .deploy]) == "deploy,run")
        #expect(throws: UserFacingError.self) { try MountPhase.parseList("build") }
        #expect(throws: UserFacingError.self) { try MountPhase.parseList("") }
    }

    @Test func shellQuotingSurvivesAShell() throws {
        #expect(ShellQuoting.singleQuoted("it's") == #"'it'\''s'"#)
        #expect(ShellQuoting.doubleQuotedEscaped("a\"$b\\\nc") == #""a\"\$b\\\nc""#)
    }
}

@Suite("The engine's multiplexed stream")
struct FrameDecoderTests {
    @Test func framesSplitAcrossReadsComeOutWhole() {
        func frame(_ stream: UInt8, _ text: String) -> Data {
            let payload = Data(text.utf8)
            var header = Data([stream, 0, 0, 0])
            withUnsafeBytes(of: UInt32(payload.count).bigEndian) { header.append(contentsOf: $0) }
            return header + payload
        }
        let stream = frame(1, "hello ") + frame(2, "oops\n") + frame(1, "world\n") + frame(1, "")
        var decoder = FrameDecoder()
        var chunks: [OutputChunk] = []
        // Feed it in awkward pieces: 3 bytes at a time.
        var offset = 0
        while offset < stream.count {
            chunks += decoder.feed(stream.subdata(in: offset..<min(offset + 3, stream.count)))
            offset += 3
        }
        #expect(chunks.map(\.stream) == [.stdout, .stderr, .stdout, .stdout])
        #expect(chunks.map { String(decoding: $0.data, as: UTF8.self) } == ["hello ", "oops\n", "world\n", ""])
    }
}

@Suite("Discarded paths: what an ephemeral container lost")
struct DiscardedPathsTests {
    @Test func onlyRealWritesOutsideMountsAreReported() throws {
        let changes: [FileChange] = [
            .init(path: "/app", kind: .modified), .init(path: "/app/scratch.txt", kind: .added),
            .init(path: "/app/data", kind: .added), .init(path: "/app/data/kept.txt", kind: .added),
            .init(path: "/etc", kind: .modified), .init(path: "/etc/hosts", kind: .modified),
            .init(path: "/run", kind: .modified), .init(path: "/run/.containerenv", kind: .added),
            .init(path: "/tmp/x", kind: .added), .init(path: "/var", kind: .modified), .init(path: "/var/log", kind: .modified),
            .init(path: "/var/log/app.log", kind: .added), .init(path: "/usr/bin/gone", kind: .deleted),
        ]
        #expect(DiscardedPaths.discarded(changes, mountPoints: ["/app/data"]) == ["/app/scratch.txt", "/var/log/app.log"])
        #expect(DiscardedPaths.discarded([.init(path: "/etc/hosts", kind: .modified)], mountPoints: []).isEmpty)
    }

    @Test func theNoticeNamesTenPathsAndTheFix() throws {
        let paths = (1...13).map { "/app/f\($0)" }
        let notice = try #require(DiscardedPaths.notice(app: try AppName("web"), discarded: paths))
        #expect(notice.contains("/app/f10") && !notice.contains("/app/f11"))
        #expect(notice.contains("... and 3 more"))
        #expect(notice.contains("storage:mount web"))
        #expect(DiscardedPaths.notice(app: try AppName("web"), discarded: []) == nil)
    }
}
