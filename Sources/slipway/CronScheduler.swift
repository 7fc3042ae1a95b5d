import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore

/// The cron scheduler inside `slipway serve`: wakes at each minute boundary and starts
/// the entries due then (`CronService.due`), each on its own thread through `run`'s
/// path. Only the current minute is looked at, so runs missed while the server was
/// down (or while this loop was late by more than a minute) are not replayed. On
/// shutdown the runs of this server end and are marked interrupted.
struct CronScheduler: Service {
    let cron: CronService
    let logger: Logger
    /// Seconds the runs get to end (their containers removed) as the server stops.
    let grace: TimeInterval

    func run() async throws {
        // The sleep between minutes is cancelled as the server starts shutting down.
        try? await cancelWhenGracefulShutdown { await loop() }
        let cron = self.cron, grace = self.grace
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                cron.interruptAll(grace: grace)
                continuation.resume()
            }
        }
    }

    private func loop() async {
        var last = Self.minute(of: Date())
        while !Task.isCancelled {
            let next = last.addingTimeInterval(60)
            let wait = next.timeIntervalSinceNow
            if wait > 0 {
                do { try await Task.sleep(for: .milliseconds(Int64(wait * 1000) + 1)) } catch { return }
            }
            // Late by more than a minute (a suspended host): the minutes between are skipped.
            let now = Self.minute(of: Date())
            last = now > next ? now : next
            tick(last)
        }
    }

    private func tick(_ minute: Date) {
        do {
            for (app, entry) in try cron.due(at: minute) {
                logger.info("cron run due", metadata: ["app": "\(app)", "entry": "\(entry.id)"])
                cron.startScheduled(app, entry: entry, minute: minute)
            }
        } catch {
            logger.error("could not read the due cron entries", metadata: ["error": "\(error)"])
        }
    }

    static func minute(of date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60)
    }
}
