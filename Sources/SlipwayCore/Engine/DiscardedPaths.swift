/// The ephemeral contract made visible: which of a finished container's writes
/// are now gone, from the engine's filesystem diff.
public enum DiscardedPaths {
    /// Files the runtime itself writes into every container (and `/etc` itself,
    /// which the engine reports as changed in every container because of them).
    static let runtimeFiles: Set<String> = ["/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/run/.containerenv"]
    /// Scratch and virtual trees nobody expects to keep.
    static let scratchTrees = ["/tmp", "/var/tmp", "/run", "/proc", "/sys", "/dev"]

    /// Added or changed paths outside storage mounts, without runtime noise and
    /// without directories that only appear because something inside them changed.
    public static func discarded(_ changes: [FileChange], mountPoints: [String]) -> [String] {
        func within(_ path: String, _ root: String) -> Bool { path == root || path.hasPrefix(root + "/") }
        let candidates = changes.filter { $0.kind != .deleted }.map(\.path).filter { path in
            !runtimeFiles.contains(path)
                && !scratchTrees.contains { within(path, $0) }
                && !mountPoints.contains { within(path, $0) || within($0, path) }
        }
        let set = Set(candidates)
        return set.filter { path in !set.contains { $0 != path && within($0, path) } }.sorted()
    }

    /// The notice printed after a container ends, or nil when nothing was lost.
    public static func notice(app: AppName, discarded: [String], limit: Int = 10) -> String? {
        guard !discarded.isEmpty else { return nil }
        var lines = ["-----> Discarded: this container wrote outside persistent storage, and these paths are gone now:"]
        lines += discarded.prefix(limit).map { "       \($0)" }
        if discarded.count > limit { lines.append("       ... and \(discarded.count - limit) more") }
        lines.append("       To keep files across runs and deploys, write them under a mount: storage:mount \(app) <storage>:<path>")
        return lines.joined(separator: "\n")
    }
}
