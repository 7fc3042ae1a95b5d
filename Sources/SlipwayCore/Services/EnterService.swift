import Foundation

/// `enter`: a shell or a command inside one of the app's running process containers
/// (Dokku's `enter`), through the engine's exec API. Unlike `run` there is no new
/// container: what the command writes outside storage stays in that container until
/// its next deploy or restart, and the caller is told which paths.
extension RunService {
    /// What runs when no command is given: bash where the image has it, else sh.
    static let shell = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec /bin/sh"]

    /// One running process container that `enter` may reach.
    public struct EnterTarget: Sendable, Equatable {
        public let id: String
        public let name: String
        /// `web.1`.
        public let process: String
    }

    /// Runs `command` (a shell when empty) in the running process `process` of `app`
    /// (`TYPE` is its first instance, `TYPE.N` that one; nil or `--`: web, else the
    /// only type), as the container's own user. Returns the command's exit status.
    public func enter(_ app: AppName, process: String?, command: [String], by caller: Caller, io: IO) throws -> Int32 {
        // Its processes are pods on the cluster: none here to enter.
        if let deploys, try deploys.clusterScheduler(of: try deploys.existing(app)) != nil {
            throw UserFacingError(.usage, "enter is not supported on the kubernetes scheduler yet: \(app)'s processes are pods on the cluster, not containers on this host; run \(app) COMMAND runs a command in a fresh pod of its release")
        }
        let containers = try self.containers, engine = self.engine
        let target = try enterTarget(app, process: process)
        var exec = ExecSpec(command: command.isEmpty ? Self.shell : command)
        if let terminal = io.terminal {
            exec.tty = true
            exec.environment["TERM"] = terminal.type
        }
        let mountPoints = try storage.mounts(of: app).map(\.containerPath)
        let before = Set(DiscardedPaths.discarded(try containers.call { engine in try await engine.changes(target.id) }, mountPoints: mountPoints))
        let execID = try containers.call { [exec] engine in try await engine.createExec(in: target.id, exec) }
        try events.record(caller, app: app.rawValue, detail: "entered \(target.process) (\(target.name))")
        let attachment = try engine.startExec(execID, tty: exec.tty)
        if let terminal = io.terminal {
            terminal.onResize { columns, rows in
                guard columns > 0, rows > 0 else { return }
                Task { try? await engine.resizeExec(execID, columns: columns, rows: rows) }
            }
            let (columns, rows) = terminal.size
            if columns > 0 && rows > 0 { _ = try? containers.call { engine in try await engine.resizeExec(execID, columns: columns, rows: rows) } }
        }
        defer { io.terminal?.onResize(nil) }

        // The exec's process is the container's, not the caller's: it is not ended when
        // the caller leaves (a tty's shell gets its hangup from the engine).
        guard try Self.pump(attachment, tty: exec.tty, io: io) == .ended, !io.isCancelled() else { return 130 }
        let status = try containers.call("the exit status of the command in \(target.name)", timeout: .seconds(30)) { engine in
            // The output can end a moment before the engine writes the exit code.
            while true {
                let state = try await engine.inspectExec(execID)
                if !state.running, let code = state.exitCode { return code }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let after = DiscardedPaths.discarded(try containers.call { engine in try await engine.changes(target.id) }, mountPoints: mountPoints)
        if let notice = DiscardedPaths.enterNotice(app: app, process: target.process, written: after.filter { !before.contains($0) }) {
            io.notice(exec.tty ? notice.replacingOccurrences(of: "\n", with: "\r\n") + "\r" : notice)
        }
        return status
    }

    /// The running process container `process` names, found among this server's
    /// process containers of `app` by their labels only: a container name, an id, or
    /// a path in `process` matches nothing.
    public func enterTarget(_ app: AppName, process: String?) throws -> EnterTarget {
        let containers = try self.containers
        struct Candidate { let summary: ContainerSummary; let type: String; let index: Int }
        let running = try containers.list(app: app, kind: .process).compactMap { summary -> Candidate? in
            let labels = summary.slipway
            guard summary.state == "running", labels.app == app.rawValue, labels.kind == .process, labels.instance == containers.instance,
                  let index = Int(labels.index) else { return nil }
            return Candidate(summary: summary, type: labels.type, index: index)
        }
        // During a rollout a process may have two containers; the one under the plain name serves.
        .sorted { a, b in
            if a.type != b.type { return a.type < b.type }
            if a.index != b.index { return a.index < b.index }
            let plain = DeployService.processName(app, a.type, a.index)
            if (a.summary.name == plain) != (b.summary.name == plain) { return a.summary.name == plain }
            return a.summary.created < b.summary.created
        }
        guard !running.isEmpty else {
            throw UserFacingError.notFound("\(app) has no running processes to enter; deploy it (git push) or start them (ps:start \(app))")
        }
        var listed: [String] = []
        for candidate in running where listed.last != "\(candidate.type).\(candidate.index)" { listed.append("\(candidate.type).\(candidate.index)") }
        let available = "running: \(listed.joined(separator: " "))"
        let types = Set(running.map(\.type))

        let wanted: (type: String, index: Int?)
        if process == nil || process == "--" {
            guard let type = types.contains("web") ? "web" : (types.count == 1 ? types.first : nil) else {
                throw UserFacingError(.usage, "\(app) runs several process types; name one: enter \(app) TYPE[.N] (\(available))")
            }
            wanted = (type, nil)
        } else {
            let parts = process!.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let index = parts.count == 2 ? Int(parts[1]).flatMap { $0 > 0 && String($0) == parts[1] ? $0 : nil } : nil
            guard ProcessType.isValid(parts[0]), parts.count == 1 || index != nil else {
                throw UserFacingError.invalid("\(quoted(process!)) is not a process type or TYPE.N; enter \(app) TYPE[.N] names one (\(available))")
            }
            wanted = (parts[0], index)
        }
        guard let chosen = running.first(where: { $0.type == wanted.type && (wanted.index == nil || $0.index == wanted.index) }) else {
            let name = wanted.index.map { "\(wanted.type).\($0)" } ?? wanted.type
            throw UserFacingError.notFound("\(app) has no running process \(quoted(name)) (\(available))")
        }
        return EnterTarget(id: chosen.summary.id, name: chosen.summary.name, process: "\(chosen.type).\(chosen.index)")
    }

    /// How streaming a container's (or an exec's) output to the caller ended.
    enum PumpEnd { case ended, cancelled, callerLeft }

    /// Forwards the caller's stdin to `attachment` (on a thread of its own) and its
    /// output to the caller, until the output ends, the caller goes, or `io` is cancelled.
    static func pump(_ attachment: ContainerAttachment, tty: Bool, io: IO) throws -> PumpEnd {
        Thread.detachNewThread {
            do {
                while true {
                    let chunk = try io.readStdin(64 * 1024)
                    if chunk.isEmpty { break }
                    try attachment.write(chunk)
                }
            } catch {}
            attachment.closeWrite()
        }
        // With a tty the engine sends the terminal's bytes as they are; without, stdout/stderr frames.
        var decoder = FrameDecoder()
        while true {
            if io.isCancelled() { return .cancelled }
            guard let bytes = try attachment.read(timeoutMilliseconds: 250) else { continue }
            if bytes.isEmpty { return .ended }
            let chunks = tty ? [OutputChunk(stream: .stdout, data: bytes)] : decoder.feed(bytes)
            for chunk in chunks {
                let delivered = chunk.stream == .stdout ? io.stdout(chunk.data) : io.stderr(chunk.data)
                if !delivered { return .callerLeft }
            }
        }
    }
}
