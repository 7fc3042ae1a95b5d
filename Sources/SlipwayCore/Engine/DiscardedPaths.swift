/// The ephemeral contract made visible: which of a finished container's writes
/// are now gone, from the engine's filesystem diff.
public enum DiscardedPaths {
    /// Files the runtime itself writes into every container: podman's under /etc and
    /// /run (podman 4.3 reports just "/etc" as changed in every container), Docker's
    /// init binary (`Init: true`) at /usr/sbin/docker-init.
    static let runtimeFiles: Set<String> = ["/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/run/.containerenv",
                                            "/usr/sbin/docker-init"]
    /// Scratch and virtual trees nobody expects to keep.
    static let scratchTrees = ["/tmp", "/var/tmp", "/run", "/proc", "/sys", "/dev"]

    /// Added or changed paths outside storage mounts, without runtime noise and
    /// without directories that only appear because something inside them changed.
    public static func discarded(_ changes: [FileChange], mountPoints: [String]) -> [String] {
        func within(_ path: String, _ root: String) -> Bool { path == root || path.hasPrefix(root + "/") }
        // A directory reported as modified only because something inside it changed
        // (/etc for podman's files, /usr/sbin for Docker's init) says nothing itself.
        var ancestors = Set<String>()
        for change in changes {
            var path = Substring(change.path)
            while let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                path = path[..<slash]
                if !ancestors.insert(String(path)).inserted { break }
            }
        }
        let candidates = changes.filter { $0.kind == .added || ($0.kind == .modified && !ancestors.contains($0.path)) }.map(\.path).filter { path in
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

    /// The notice printed after `enter`: the container keeps running, so what the
    /// command wrote is still there, but only until the process's next deploy or restart.
    public static func enterNotice(app: AppName, process: String, written: [String], limit: Int = 10) -> String? {
        guard !written.isEmpty else { return nil }
        var lines = ["-----> Written outside persistent storage: these paths stay only in this container (\(process)) until its next deploy or restart:"]
        lines += written.prefix(limit).map { "       \($0)" }
        if written.count > limit { lines.append("       ... and \(written.count - limit) more") }
        lines.append("       To keep files across deploys, write them under a mount: storage:mount \(app) <storage>:<path>")
        return lines.joined(separator: "\n")
    }
}
