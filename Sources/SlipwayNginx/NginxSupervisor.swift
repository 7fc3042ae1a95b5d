import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore

/// Keeps the managed nginx up while `slipway serve` runs: starts it (or finds it
/// running from an earlier server), then runs `afterStart` (bringing every app back
/// to its state), then every `interval` starts nginx again if it died and rotates
/// the apps' access logs. At graceful shutdown it stops at once, before the SSH
/// front drains, so an admin stopping both does not see nginx come back; nginx
/// itself keeps serving.
public struct NginxSupervisor: Service {
    let ensureRunning: @Sendable () throws -> Bool
    let rotateAccessLogs: @Sendable () -> [String]
    let afterStart: @Sendable () -> Void
    let interval: Duration
    /// The port nginx serves, for the log line that says it started.
    let port: Int
    let logger: Logger

    public init(nginx: NginxProxy, accessLogMaxBytes: Int, logger: Logger, afterStart: @escaping @Sendable () -> Void) {
        self.init(ensureRunning: { try nginx.ensureRunning() }, rotateAccessLogs: { nginx.rotateAccessLogs(maxBytes: accessLogMaxBytes) },
                  afterStart: afterStart, interval: .seconds(2), port: nginx.settings.proxyPort, logger: logger)
    }

    init(ensureRunning: @escaping @Sendable () throws -> Bool, rotateAccessLogs: @escaping @Sendable () -> [String],
         afterStart: @escaping @Sendable () -> Void, interval: Duration, port: Int, logger: Logger) {
        self.ensureRunning = ensureRunning
        self.rotateAccessLogs = rotateAccessLogs
        self.afterStart = afterStart
        self.interval = interval
        self.port = port
        self.logger = logger
    }

    public func run() async {
        let (ensureRunning, rotateAccessLogs, afterStart, port, logger) = (self.ensureRunning, self.rotateAccessLogs, self.afterStart, self.port, self.logger)
        await Self.onThread {
            do {
                if try ensureRunning() { logger.info("started nginx", metadata: ["port": "\(port)"]) }
            } catch {
                logger.error("the proxy did not start", metadata: ["error": "\(error)"])
            }
            afterStart()
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            await Self.onThread {
                do {
                    if try ensureRunning() { logger.warning("nginx was not running; started it again") }
                } catch {
                    logger.error("the proxy is down and did not start", metadata: ["error": "\(error)"])
                }
                for app in rotateAccessLogs() { logger.info("rotated the access log", metadata: ["app": "\(app)"]) }
            }
        }
    }

    /// Runs blocking `work` on a thread of its own: a reload waits up to 5 s and a
    /// recovery may deploy, which must not hold one of Swift's few pool threads.
    /// Returns when `work` ends, or at once at graceful shutdown (it then finishes unwatched).
    static func onThread(_ work: @escaping @Sendable () -> Void) async {
        let (ended, continuation) = AsyncStream<Void>.makeStream()
        Thread.detachNewThread {
            work()
            continuation.finish()
        }
        for await _ in ended.cancelOnGracefulShutdown() {}
    }
}
