import Foundation
import SlipwayCore

extension CommandContext {
    /// Dokku's question before a destructive command: warns on stderr, then reads one
    /// line from stdin, which must be `name`. A terminal answers nothing here (a
    /// script pipes the name in, or passes --force), so nothing is destroyed by accident.
    /// `forced` (the command's own `--force`) or the global `--force` skip the question.
    func confirmDestruction(of name: String, _ what: String, forced: Bool) throws {
        if forced || force { return }
        note(" !     WARNING: Potentially Destructive Action")
        note(" !     This command will destroy \(what).")
        note(" !     To proceed, type \"\(name)\"")
        let typed = stdin.isInteractive ? nil : try stdin.readLine(limit: 256)
        guard let typed, String(decoding: typed, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == name else {
            throw UserFacingError.invalid("confirmation did not match \(quoted(name)); nothing was destroyed (use --force to skip the question)")
        }
    }
}
