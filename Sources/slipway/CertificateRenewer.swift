import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore

/// Certificate renewal inside `slipway serve`: once a minute (the first check 10 s
/// after start) it asks `ACMEService.renewDue` for the apps whose certificate has a
/// third of its lifetime left, has none yet, or whose backoff after a failure has
/// ended, and obtains theirs. Each outcome goes to the server's log; failures are
/// also in `letsencrypt:list` and `events` (written by the attempt). A loop of its
/// own, on its own thread: an order takes seconds and must not delay cron's ticks,
/// nor wait for the cooperative pool.
struct CertificateRenewer: Service {
    let acme: ACMEService
    let logger: Logger
    var interval: TimeInterval = 60
    var firstCheck: TimeInterval = 10

    func run() async throws {
        let stop = CronScheduler.StopFlag()
        let acme = self.acme, logger = self.logger, interval = self.interval, firstCheck = self.firstCheck
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { continuation in
                    Thread.detachNewThread {
                        var next = Date().addingTimeInterval(firstCheck)
                        while !stop.isSet {
                            // Short naps, so a stop is seen within a quarter second.
                            if next.timeIntervalSinceNow > 0 { Thread.sleep(forTimeInterval: min(0.25, next.timeIntervalSinceNow)); continue }
                            Self.check(acme: acme, logger: logger)
                            next = Date().addingTimeInterval(interval)
                        }
                        continuation.resume()
                    }
                }
            } onGracefulShutdown: {
                stop.set()
            }
        } onCancel: {
            stop.set()
        }
    }

    static func check(acme: ACMEService, logger: Logger) {
        do {
            for outcome in try acme.renewDue() {
                if let error = outcome.error {
                    logger.error("letsencrypt: no certificate", metadata: ["app": "\(outcome.app)", "error": "\(error)"])
                } else {
                    logger.info("letsencrypt: certificate issued", metadata: ["app": "\(outcome.app)", "names": "\(outcome.names.joined(separator: " "))",
                                                                           "expires": "\(outcome.expires.map { $0.formatted(.iso8601) } ?? "-")"])
                }
                for (name, reason) in outcome.uncovered {
                    logger.warning("letsencrypt: name left out of the certificate", metadata: ["app": "\(outcome.app)", "name": "\(name)", "error": "\(reason)"])
                }
            }
        } catch {
            logger.error("letsencrypt: could not read the apps due for renewal", metadata: ["error": "\(error)"])
        }
    }
}
