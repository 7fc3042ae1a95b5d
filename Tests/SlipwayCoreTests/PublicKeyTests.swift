import Foundation
import Testing
@testable import SlipwayCore

@Suite("Public keys are parsed by libssh and fingerprinted as ssh-keygen does")
struct PublicKeyTests {
    static let accepted: [(String, Int?, Int)] = [
        ("ed25519", nil, 256), ("ecdsa", 256, 256), ("ecdsa", 384, 384), ("ecdsa", 521, 521),
        ("rsa", 2048, 2048), ("rsa", 3072, 3072),
    ]

    @Test(arguments: 0..<accepted.count)
    func fingerprintMatchesSSHKeygen(_ index: Int) throws {
        let (type, bits, expectedBits) = Self.accepted[index]
        let generated = try makeKey(type, bits: bits)
        let key = try PublicKey(line: generated.line)
        let reference = try runTool("/usr/bin/ssh-keygen", ["-lf", generated.path]).out
        // ssh-keygen -lf: "<bits> SHA256:<hash> <comment> (<TYPE>)"
        let fields = reference.split(separator: " ")
        #expect(key.fingerprint == String(fields[1]))
        #expect(key.bits == expectedBits)
        #expect(Int(fields[0]) == expectedBits)
        #expect(key.comment == "test@host")
        #expect(key.line == generated.line.split(separator: " ").prefix(2).joined(separator: " "))
    }

    @Test func weakRSAIsRefused() throws {
        let generated = try makeKey("rsa", bits: 1024)
        let error = #expect(throws: UserFacingError.self) { try PublicKey(line: generated.line) }
        #expect(error?.message.contains("1024 bits is too weak") == true)
    }

    @Test func malformedKeysAreRefused() throws {
        let ed = try makeKey("ed25519").line.split(separator: " ")
        let cases = [
            "",                                   // empty
            "\n\n# only a comment\n",             // nothing but a comment
            "ssh-ed25519",                        // no blob
            "ssh-ed25519 AAAA",                   // truncated blob
            "ssh-ed25519 !!!notbase64!!!",
            "ssh-rsa \(ed[1])",                   // type and blob disagree
            "ecdsa-sha2-nistp384 \(try makeKey("ecdsa", bits: 256).line.split(separator: " ")[1])", // wrong curve
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",     // unsupported type
            "\(ed[0]) \(ed[1])\n\(ed[0]) \(ed[1])", // two keys
            "command=\"x\" \(ed[0]) \(ed[1])",    // authorized_keys options
        ]
        for line in cases {
            #expect(throws: UserFacingError.self, "\(line)") { try PublicKey(line: line) }
        }
    }
}
