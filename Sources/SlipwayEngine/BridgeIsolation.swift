import Foundation
import SlipwayCore

/// Keeps apps' networks apart on podman. podman's own isolation of its networks
/// (netavark 1.4's `isolate`) hangs on one shared `FORWARD -j NETAVARK_ISOLATION_1`
/// rule that netavark deletes whenever any isolated network goes away (measured on
/// Debian 12: after one `apps:destroy`, every app reached every other by IP). So
/// Slipway keeps one rule of its own, which netavark never touches: a packet routed
/// from one podman bridge to another is dropped. Traffic inside one bridge (an app's
/// containers talking to each other) is bridged, not routed, and passes.
/// The rule sits in the mangle table's FORWARD chain, which packets cross before the
/// filter table's: in the filter table netavark inserts its own ACCEPTing jump at the
/// top whenever it sets one up again, and a fresh host had every app reaching every
/// other through it (IsolationAttackTests, seen locally after ci37).
/// Docker isolates its bridge networks itself (DOCKER-ISOLATION chains).
public enum BridgeIsolation {
    static let rule = ["FORWARD", "-i", "podman+", "-o", "podman+", "-m", "physdev", "!", "--physdev-is-bridged",
                       "-m", "comment", "--comment", "slipway: no traffic between container networks", "-j", "DROP"]
    static let table = ["-t", "mangle"]

    private static let checked = Checked()

    /// Adds the rule when it is missing; once per process unless `force`.
    public static func ensure(force: Bool = false) throws {
        if !force && checked.value { return }
        guard let iptables = ["/usr/sbin/iptables", "/sbin/iptables"].first(where: FileManager.default.isExecutableFile) else {
            throw UserFacingError(.unavailable, "iptables is not installed, so apps' networks cannot be kept apart; install it (apt-get install iptables)")
        }
        // Where earlier versions put it (the filter table), where it can end up below netavark's jump.
        _ = try? ProcessRunner.run(iptables, ["-D"] + rule)
        if try ProcessRunner.run(iptables, table + ["-C"] + rule).status != 0 {
            let added = try ProcessRunner.run(iptables, table + ["-I"] + rule.prefix(1) + ["1"] + rule.dropFirst())
            guard added.status == 0 else {
                throw UserFacingError(.unavailable, "cannot add the firewall rule that keeps apps' networks apart: \(added.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        checked.value = true
    }
}

private final class Checked: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false
    var value: Bool {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
