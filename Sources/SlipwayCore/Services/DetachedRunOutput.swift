import Foundation

/// `run:detached`'s output, kept for `run:logs APP NAME`.
///
/// The command returns as soon as the container starts, so a follower thread of
/// the process that started it (`slipway serve` for SSH callers) reads the
/// container's logs from its start to its end, stores them, and then removes the
/// container (the engine keeps it until then, so the logs and the exit status are
/// there to read however fast it ends). When the server stops meanwhile, the next
/// one finds the container (ended or not) and its record still running, and reads
/// the logs again from the start (`resumeDetachedOutputs`).
extension RunService {
    /// Where detached runs' output is kept.
    var outputs: OutputService { OutputService(store: events.store, paths: paths, settings: settings) }

    /// Follows container `id` (named `name`) on a thread of its own until it ends,
    /// storing its output in `recording`, then removes it.
    func followDetached(id: String, name: String, into recording: OutputRecording?) {
        let containers: Containers
        do { containers = try self.containers } catch { recording?.finish(.interrupted); return }
        Thread.detachNewThread {
            let lines = LineSplitter { recording?.write($0) }
            // No time bound: a detached run may run for days; run:stop or the end of the
            // caller's access removes the container, which ends the stream. Followed as
            // every container is (the exit awaited beside the stream, then whatever the
            // stream missed): podman's stream alone once stayed open past the exit, and the
            // ended run was never removed.
            let streamed = (try? containers.call("the output of \(name)", timeout: .seconds(10 * 365 * 24 * 3600)) { engine in
                try await Containers.follow(id, on: engine) { lines.feed($0.data) }
            }) != nil
            lines.flush()
            // Gone already (removed by run:stop): no exit status to wait for.
            let present = ((try? containers.inspect(id)) ?? nil) != nil
            let status = present ? try? containers.call { engine in try await engine.exitCode(ofEnded: id) } : nil
            _ = try? containers.remove([id])
            guard streamed, let status else {
                // Removed before it ended (run:stop, access ended) or the engine went away.
                recording?.write("-----> \(name) was stopped")
                recording?.finish(.stopped)
                return
            }
            if status != 0 { recording?.write("-----> \(name) exited with status \(status)") }
            recording?.finish(status == 0 ? .succeeded : .failed)
        }
    }

    /// Called as `slipway serve` starts, before stored outputs left running are marked
    /// interrupted: each detached run of this server whose record is still running
    /// (its follower died with the previous server) is followed again, its stored
    /// text read anew from the container's start. Ended detached runs nobody follows
    /// (their record is gone) are removed. Returns the ids of the records followed.
    @discardableResult
    public func resumeDetachedOutputs() throws -> Set<Int64> {
        let containers = try self.containers
        var resumed = Set<Int64>()
        for container in try containers.list(app: nil, kind: .detached) {
            guard let app = container.labels[ContainerLabel.app].flatMap({ try? AppName($0) }) else { continue }
            if let record = try outputs.records(of: app, kind: .run, ref: container.name).first(where: { $0.status == .running }) {
                let recording = try outputs.restart(record)
                recording.write("-----> the server restarted while \(container.name) ran; its output, read again from its start:")
                followDetached(id: container.id, name: container.name, into: recording)
                resumed.insert(record.id!)
            } else if container.state != "running" {
                _ = try? containers.remove([container.id])
            } else {
                followDetached(id: container.id, name: container.name, into: nil)
            }
        }
        return resumed
    }
}
