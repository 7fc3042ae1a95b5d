import Foundation
import SlipwayCore

/// nginx's process: finding the live master by its pid file, graceful reloads, and
/// starting the managed nginx (after killing the workers a killed master left).
extension NginxProxy {
    /// The pid of the running managed nginx, if any.
    var runningPID: pid_t? { Self.livePID(file: pidFile) }

    public var isRunning: Bool { runningPID != nil }

    /// Graceful reload (SIGHUP: new workers take the new config, old ones finish
    /// their requests). Nothing to do while nginx is not running: `ensureRunning` starts it with the live files.
    public func reload() throws {
        guard let pid = isManaged ? runningPID : Self.livePID(file: systemPIDFile) else {
            if isManaged { return }
            throw UserFacingError(.unavailable, "the system nginx is not running (no live pid in \(systemPIDFile)); start it (systemctl start nginx)")
        }
        let before = Self.children(of: pid)
        kill(pid, SIGHUP)
        // Done once the master runs workers with the new config and has told every
        // old one to stop accepting (its title then says "shutting down"): from then
        // on every new connection gets the new config, so "deployed" means it answers.
        var started = false
        for _ in 0..<500 {
            let now = Self.children(of: pid)
            started = started || (!now.isEmpty && !now.isSubset(of: before))
            if started && before.allSatisfy({ !now.contains($0) || Self.isShuttingDown($0) }) { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw UserFacingError(.unavailable, "nginx did not take the new config within 5 s; see \(isManaged ? directory + "/error.log" : "the system nginx's error log")")
    }

    /// System mode: the pid file the system nginx's main config names (Debian's default otherwise).
    var systemPIDFile: String {
        let text = (try? String(contentsOfFile: mainConfig, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ";" })
            if words.count >= 2, words[0] == "pid" { return String(words[1]) }
        }
        return "/run/nginx.pid"
    }

    /// The pid in `file` if an nginx master runs under it (a pid file outlives a
    /// reboot or a SIGKILL, and its number may now be another process's).
    static func livePID(file: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
              String(decoding: cmdline, as: UTF8.self).hasPrefix("nginx: master process") else { return nil }
        return pid
    }

    /// An old worker told to stop (graceful shutdown) retitles itself.
    static func isShuttingDown(_ pid: pid_t) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return true }
        return String(decoding: data, as: UTF8.self).contains("shutting down")
    }

    /// The process ids whose parent is `pid`.
    static func children(of pid: pid_t) -> Set<pid_t> {
        var result = Set<pid_t>()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm) ": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == pid { result.insert(child) }
        }
        return result
    }

    /// Starts the managed nginx when it is not running (`NginxSupervisor` calls it at
    /// start and whenever it finds nginx gone). Returns true if it started one.
    @discardableResult
    public func ensureRunning() throws -> Bool {
        guard isManaged else { return false }
        try prepare()
        if isRunning { return false }
        return try exclusive {
            if isRunning { return false }
            guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
                throw UserFacingError(.unavailable, "nginx is not installed (\(Self.executable)); scripts/setup.sh installs it")
            }
            killOrphanedWorkers()
            // Prefix `./` in `directory`: the log paths in the config stay relative, so workers
            // reopen them from the working directory they inherit (see `rotateAccessLogs`).
            let result = try ProcessRunner.runDaemonizing(Self.executable, ["-p", "./", "-c", mainConfig], logFile: directory + "/start.log",
                                                          currentDirectory: directory)
            guard result.status == 0 else {
                throw UserFacingError(.unavailable, "nginx did not start: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            // Its pid file appears once the config is read; until then a reload would be lost.
            for _ in 0..<300 where !isRunning { Thread.sleep(forTimeInterval: 0.01) }
            return true
        }
    }

    /// Workers of a master that was killed (SIGKILL) keep serving the old config and
    /// hold the ports, so a new master could not listen: they go first. They are
    /// told apart from other nginx processes by the error log they hold open.
    private func killOrphanedWorkers() {
        // As the kernel shows open files: with symlinks in the data dir's path resolved.
        let log = URL(fileURLWithPath: directory + "/error.log").resolvingSymlinksInPath().path
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), pid != getpid(),
                  (try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8))?.hasPrefix("nginx") == true else { continue }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd")) ?? []
            if fds.contains(where: { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\($0)")) == log }) {
                kill(pid, SIGKILL)
            }
        }
        Thread.sleep(forTimeInterval: 0.05)
    }

    /// Moves each access log larger than `maxBytes` to `<log>.1` (the one older
    /// generation kept, replaced at the next rotation) and has nginx reopen its logs.
    ///
    /// Managed: SIGUSR1, never a reload. A reload starts new workers and closes every
    /// idle keep-alive connection; at 19k requests/s a 16 MB log filled every ~8 s and
    /// the reloads cost the proxy benchmark its throughput and socket errors. On USR1 the
    /// master (root) opens the new files and gives them to the worker user, then each
    /// worker (nobody) flushes its buffer into the moved file and reopens the path itself:
    /// it can, because the paths are relative to its working directory, `<data-dir>/nginx`
    /// (see `ensureRunning`), and the 0700 data dir above is never searched. That is
    /// checked, not assumed: until no nginx process holds a moved file, the moved file
    /// can grow; if one still does after 2 s (a master started by an earlier Slipway with
    /// absolute paths, or a worker that failed to open), nginx is reloaded after all, so
    /// a flood of requests never grows a moved file without bound.
    ///
    /// System mode: a reload (the system nginx's workers, as www-data, cannot reach the
    /// data dir, and its working directory is not ours). Old workers finish in the moved
    /// file, so no line is lost either way. `NginxSupervisor` calls this every few
    /// seconds. Returns the apps whose logs were rotated.
    @discardableResult
    public func rotateAccessLogs(maxBytes: Int) -> [String] {
        let rotated = try? exclusive { () -> [String] in
            let fm = FileManager.default
            var rotated: [String] = []
            for file in (try? fm.contentsOfDirectory(atPath: accessLogDirectory)) ?? [] where file.hasSuffix(".access.log") {
                let path = "\(accessLogDirectory)/\(file)"
                guard let size = (try? fm.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes,
                      rename(path, path + ".1") == 0 else { continue }
                rotated.append(String(file.dropLast(".access.log".count)))
            }
            guard !rotated.isEmpty else { return [] }
            if isManaged, let pid = runningPID {
                let moved = Set(rotated.map { URL(fileURLWithPath: "\(accessLogDirectory)/\($0).access.log.1").resolvingSymlinksInPath().path })
                kill(pid, SIGUSR1)
                if Self.waitUntilNoneHolds(moved, master: pid, seconds: 2) { return rotated }
            }
            try? reload()
            return rotated
        }
        return rotated ?? []
    }

    /// Waits until neither the master nor any of its workers has one of `files` open.
    static func waitUntilNoneHolds(_ files: Set<String>, master: pid_t, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            let holders = Self.children(of: master).union([master]).filter { pid in
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
                return fds.contains { files.contains((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "") }
            }
            if holders.isEmpty { return true }
            Thread.sleep(forTimeInterval: 0.01)
        } while Date() < deadline
        return false
    }
}
