import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore

/// The cron scheduler inside `slipway serve`: wakes at each minute boundary and starts
/// the entries due then (`CronService.due`), each on its own thread through `run`'s
/// path. Only the current minute is looked at, so runs missed while the server was
/// down (or while this loop was late by more than a minute) are not replayed. On
/// shutdown the runs of this server end and are marked interrupted. The same minute
/// starts the backing services' scheduled backups (`DatastoreService.dueBackups`).
struct CronScheduler: Service {
    let cron: CronService
    let backups: DatastoreService
    let logger: Logger
    /// Seconds the runs get to end (their containers removed) as the server stops.
    let grace: TimeInterval

    func run() async throws {
        // The minute loop runs on a thread of its own: a tick must not wait for a free
        // thread of the cooperative pool, which the server's other work may hold (in
        // ci15 scheduled runs started more than 75 s late under the full suite).
        let stop = StopFlag()
        let cron = self.cron, backups = self.backups, logger = self.logger, grace = self.grace
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { continuation in
                    Thread.detachNewThread {
                        Self.loop(cron: cron, backups: backups, logger: logger, stop: stop)
                        continuation.resume()
                    }
                }
            } onGracefulShutdown: {
                stop.set()
            }
        } onCancel: {
            stop.set()
        }
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                cron.interruptAll(grace: grace)
                continuation.resume()
            }
        }
    }

    /// Set once, as the server stops.
    final class StopFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        func set() { lock.withLock { stopped = true } }
        var isSet: Bool { lock.withLock { stopped } }
    }

    private static func loop(cron: CronService, backups: DatastoreService, logger: Logger, stop: StopFlag) {
        var last = minute(of: Date())
        while !stop.isSet {
            let next = last.addingTimeInterval(60)
            // Short naps, so a stop is seen within a quarter second.
            while !stop.isSet, next.timeIntervalSinceNow > 0 {
                Thread.sleep(forTimeInterval: min(0.25, max(0.001, next.timeIntervalSinceNow + 0.001)))
            }
            if stop.isSet { return }
            // Late by more than a minute (a suspended host): the minutes between are skipped.
            let now = minute(of: Date())
            last = now > next ? now : next
            tick(last, cron: cron, logger: logger)
            tickBackups(last, backups: backups, logger: logger)
        }
    }

    private static func tick(_ minute: Date, cron: CronService, logger: Logger) {
        do {
            for (app, entry) in try cron.due(at: minute) {
                logger.info("cron run due", metadata: ["app": "\(app)", "entry": "\(entry.id)"])
                cron.startScheduled(app, entry: entry, minute: minute)
            }
        } catch {
            logger.error("could not read the due cron entries", metadata: ["error": "\(error)"])
        }
    }

    /// Each due backup on a thread of its own (a dump can take minutes); a failure is
    /// audited by the backup itself and logged here.
    private static func tickBackups(_ minute: Date, backups: DatastoreService, logger: Logger) {
        do {
            for (kind, name) in try backups.dueBackups(at: minute) {
                logger.info("backup due", metadata: ["service": "\(kind.namespace) \(name)"])
                Thread.detachNewThread {
                    if let error = backups.scheduledBackup(kind, name) {
                        logger.error("scheduled backup failed", metadata: ["service": "\(kind.namespace) \(name)", "error": "\(error)"])
                    }
                }
            }
        } catch {
            logger.error("could not read the due backups", metadata: ["error": "\(error)"])
        }
    }

    static func minute(of date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60)
    }
}
