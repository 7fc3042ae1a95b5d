import Foundation
import GRDB

/// What a stored output belongs to.
public enum OutputKind: String, Sendable, Codable, CaseIterable {
    /// A build; ref: the build's id.
    case build
    /// A whole deploy, as the pusher saw it; ref: the release, `v3`.
    case deploy
    /// One deploy task; ref: release and phase, `v3 predeploy`.
    case task
    /// One cron run; ref: the cron entry's id.
    case cron
    /// One `run:detached`; ref: its container's name.
    case run
}

/// How a stored output ended (or that it has not yet).
public enum OutputStatus: String, Sendable, Codable, CaseIterable {
    case running, succeeded, failed
    /// The process writing it went away (a server restart) before it ended.
    case interrupted
    /// Never ran (a cron run skipped by its concurrency policy).
    case skipped
    /// Stopped from outside (run:stop, a timeout, a replacing cron run).
    case stopped
}

/// One stored output: its row in `output_records`; the text is a file under the data
/// directory (`DataPaths.output`).
public struct OutputRecord: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "output_records"
    public var id: Int64?
    public var appId: Int64
    public var kind: OutputKind
    public var ref: String
    public var status: OutputStatus
    public var startedAt: Date
    public var finishedAt: Date?
    /// Bytes the producer wrote, the part left out of the file included (0 while running).
    public var bytes: Int64
}

/// The stored output of builds, deploys, deploy tasks, cron runs and detached runs:
/// the only trace an ephemeral container leaves. Bounded per app and kind
/// (`output_records_to_keep`) and per record (`output_max_bytes`, the middle left
/// out); removed with the app.
public struct OutputService: Sendable {
    let store: Store
    let paths: DataPaths
    /// Records kept per app and kind; starting one more deletes the oldest.
    let recordsToKeep: Int
    /// The most one record's file holds; see `OutputRecording`.
    let maxBytes: Int

    public init(store: Store, paths: DataPaths, settings: Settings) {
        self.store = store
        self.paths = paths
        recordsToKeep = max(1, settings.outputRecordsToKeep)
        maxBytes = max(OutputRecording.minimumBytes, settings.outputMaxBytes)
    }

    /// Starts recording an output of `app`. Older records of the same kind beyond
    /// `output_records_to_keep` go, with their files, in the same transaction.
    public func start(app: AppName, kind: OutputKind, ref: String) throws -> OutputRecording {
        let (record, dropped) = try store.write { db -> (OutputRecord, [OutputRecord]) in
            var record = OutputRecord(appId: try AppService.id(of: app, db), kind: kind, ref: ref, status: .running,
                                      startedAt: Date(), bytes: 0)
            try record.insert(db)
            let dropped = try OutputRecord.filter(Column("app_id") == record.appId && Column("kind") == kind.rawValue)
                .order(Column("id").desc).limit(-1, offset: recordsToKeep).fetchAll(db)
            try OutputRecord.deleteAll(db, keys: dropped.compactMap(\.id))
            return (record, dropped)
        }
        // Files go after the commit: a crash in between leaves only unreferenced files.
        for old in dropped { try? FileManager.default.removeItem(atPath: paths.output(old)) }
        return try OutputRecording(record: record, file: paths.output(record), maxBytes: maxBytes, store: store)
    }

    /// Records `record` (still running) again from its start: its file is emptied.
    func restart(_ record: OutputRecord) throws -> OutputRecording {
        try OutputRecording(record: record, file: paths.output(record), maxBytes: maxBytes, store: store)
    }

    /// The app's records of `kind` (those for `ref` only, when given), newest first.
    public func records(of app: AppName, kind: OutputKind, ref: String?) throws -> [OutputRecord] {
        try store.read { db in
            guard let appID = try AppService.find(app, db)?.id else { return [] }
            var query = OutputRecord.filter(Column("app_id") == appID && Column("kind") == kind.rawValue)
            if let ref { query = query.filter(Column("ref") == ref) }
            return try query.order(Column("id").desc).fetchAll(db)
        }
    }

    /// The record as stored now (nil once it was deleted).
    public func reload(_ record: OutputRecord) throws -> OutputRecord? {
        try store.read { db in try OutputRecord.fetchOne(db, key: record.id) }
    }

    /// The stored text. While the record runs past half of `output_max_bytes`, the
    /// file holds the head only; the tail is written when it ends.
    public func text(of record: OutputRecord) throws -> String {
        guard let data = FileManager.default.contents(atPath: paths.output(record)) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// `-t`: hands `output` the stored text, then what is added, polling the file
    /// until the record no longer runs (or `isCancelled`). Text is handed over in whole
    /// lines. Returns the record as it ended (nil when it was deleted meanwhile).
    @discardableResult
    public func follow(_ record: OutputRecord, poll: TimeInterval = 0.25, isCancelled: @Sendable () -> Bool,
                       output: (String) -> Void) throws -> OutputRecord? {
        var offset: UInt64 = 0
        var pending = Data()
        func drain(final: Bool) {
            guard let handle = FileHandle(forReadingAtPath: paths.output(record)) else { return }
            defer { try? handle.close() }
            try? handle.seek(toOffset: offset)
            let more = handle.readDataToEndOfFile()
            offset += UInt64(more.count)
            pending.append(more)
            // Whole lines only, so a UTF-8 character is never cut; the rest at the end.
            let cut = final ? pending.endIndex : (pending.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? pending.startIndex)
            if cut > pending.startIndex {
                output(String(decoding: pending[pending.startIndex..<cut], as: UTF8.self))
                pending.removeSubrange(pending.startIndex..<cut)
            }
        }
        while true {
            // The status is read before the file: a record that ended wrote all of its
            // file before its status changed, so the drain that follows gets everything.
            let now = try reload(record)
            if now?.status != .running {
                drain(final: true)
                return now
            }
            drain(final: false)
            if isCancelled() { return now }
            Thread.sleep(forTimeInterval: poll)
        }
    }

    /// `builds:output`, `releases:output`, `run:logs`: the app's record of `kind` for
    /// `ref` (nil: the latest), its text handed to `output`; with `follow`, what is
    /// added too until it ends or `isCancelled`. Returns that record as last read.
    /// `listing` without a ref: every stored record of the kind instead (newest
    /// first, maybe none), no text.
    @discardableResult
    public func show(_ app: AppName, kind: OutputKind, ref: String?, listing: Bool = false, follow: Bool,
                     isCancelled: @Sendable () -> Bool, output: (String) -> Void) throws -> [OutputRecord] {
        let found = try records(of: app, kind: kind, ref: ref)
        if listing && ref == nil { return found }
        guard let record = found.first else {
            throw UserFacingError.notFound(Self.missing(app, kind: kind, ref: ref))
        }
        if follow { return [try self.follow(record, isCancelled: isCancelled, output: output) ?? record] }
        output(try text(of: record))
        return [record]
    }

    /// Why there is nothing to show, and where to look.
    static func missing(_ app: AppName, kind: OutputKind, ref: String?) -> String {
        switch (kind, ref) {
        case (.build, let id?): "\(app) has no stored output of build \(id) (only recent builds keep theirs); builds:list \(app) shows the builds"
        case (.deploy, let version?): "\(app) has no stored output of release \(version) (only recent deploys keep theirs); releases \(app) lists them"
        case (.run, let name?): "\(app) has no stored output of a detached run \(quoted(name)); run:detached prints the name to use"
        case (.task, let ref?), (.cron, let ref?): "\(app) has no stored output for \(quoted(ref))"
        case (.build, nil): "\(app) has no stored build output yet; git push builds it"
        case (.deploy, nil): "\(app) has no stored deploy output yet; git push deploys it"
        case (_, nil): "\(app) has no stored \(kind) output yet"
        }
    }

    /// Called as `slipway serve` starts: records left running by the previous server
    /// (or a process it outlived) become `interrupted`, but those in `followed` (detached
    /// runs followed again, `RunService.resumeDetachedOutputs`). Returns how many.
    @discardableResult
    public func markInterrupted(except followed: Set<Int64> = []) throws -> Int {
        try store.write { db in
            let left = try Int64.fetchAll(db, sql: "SELECT id FROM output_records WHERE status = ?", arguments: [OutputStatus.running.rawValue])
                .filter { !followed.contains($0) }
            for id in left {
                try db.execute(sql: "UPDATE output_records SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                               arguments: [OutputStatus.interrupted.rawValue, Date(), id, OutputStatus.running.rawValue])
            }
            return left.count
        }
    }

    /// Removes every stored file of the app (with `apps:destroy`, after its rows went).
    func removeFiles(ofApp appID: Int64) {
        try? FileManager.default.removeItem(atPath: paths.outputs(ofApp: appID))
    }
}

/// One output being recorded. Thread-safe: concurrent writers' lines never mix.
///
/// Bounded while streaming: lines go to the file until they would pass half of
/// `maxBytes` (the head); after that the latest lines are kept in memory (the tail,
/// a ring of at most the other half), and at `finish` a marker line saying how much
/// was left out and the tail are appended.
public final class OutputRecording: @unchecked Sendable {
    /// The smallest `output_max_bytes` honoured.
    public static let minimumBytes = 1024

    /// The record as it started (its id and ref; the status changes in the store).
    public let record: OutputRecord
    private let lock = NSLock()
    private let handle: FileHandle
    private let store: Store
    private let headLimit: Int
    private let tailLimit: Int
    private var headBytes = 0
    private var headFull = false
    private var tail = Data()
    /// Bytes dropped from the front of the tail.
    private var leftOut = 0
    /// Whether the last byte dropped ended a line (the tail then starts a whole one).
    private var tailStartsLine = false
    private var total: Int64 = 0
    private var finished = false

    init(record: OutputRecord, file: String, maxBytes: Int, store: Store) throws {
        self.record = record
        self.store = store
        headLimit = maxBytes / 2
        tailLimit = maxBytes - maxBytes / 2
        let directory = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file) else {
            throw UserFacingError(.unavailable, "cannot write the output file \(file); check the data directory's space and permissions")
        }
        self.handle = handle
    }

    /// Appends one line (a newline is added). Ignored once finished.
    public func write(_ line: String) {
        var data = Data(line.utf8)
        data.append(UInt8(ascii: "\n"))
        lock.withLock {
            guard !finished else { return }
            total += Int64(data.count)
            if !headFull && headBytes + data.count <= headLimit {
                headBytes += data.count
                try? handle.write(contentsOf: data)
                return
            }
            headFull = true
            tail.append(data)
            if tail.count > tailLimit {
                let drop = tail.count - tailLimit
                leftOut += drop
                tailStartsLine = tail[tail.startIndex + drop - 1] == UInt8(ascii: "\n")
                tail.removeSubrange(tail.startIndex..<tail.startIndex + drop)
            }
        }
    }

    /// Ends the record with `status`: writes the tail, then the status, so a follower
    /// that sees the status finds the whole text. Only the first call counts; a
    /// record already marked `interrupted` (by a newer server) keeps that status.
    public func finish(_ status: OutputStatus) {
        let done: OutputRecord? = lock.withLock {
            guard !finished else { return nil }
            finished = true
            var rest = tail
            if leftOut > 0 {
                // The tail starts at a whole line: a partial one goes too.
                if !tailStartsLine, let newline = rest.firstIndex(of: UInt8(ascii: "\n")), newline + 1 < rest.endIndex {
                    leftOut += newline + 1 - rest.startIndex
                    rest.removeSubrange(rest.startIndex...newline)
                }
                rest = Data("[... \(leftOut) bytes left out ...]\n".utf8) + rest
            }
            try? handle.write(contentsOf: rest)
            try? handle.synchronize()
            try? handle.close()
            tail = Data()
            var done = record
            done.status = status
            done.finishedAt = Date()
            done.bytes = total
            return done
        }
        guard let done else { return }
        _ = try? store.write { db in
            try db.execute(sql: "UPDATE output_records SET status = ?, finished_at = ?, bytes = ? WHERE id = ? AND status = ?",
                           arguments: [done.status.rawValue, done.finishedAt, done.bytes, done.id, OutputStatus.running.rawValue])
        }
    }

    /// Writes each line of `text` (a multi-line message, e.g. an error with log lines).
    public func writeLines(_ text: String) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) { write(String(line)) }
    }

    deinit {
        // A recording dropped without `finish` (a thrown error on a path that forgot
        // it) must not stay `running` for ever.
        if !finished { finish(.failed) }
    }
}
