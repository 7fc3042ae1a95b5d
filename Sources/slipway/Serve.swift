import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SlipwayCore
import SlipwayNginx
import SlipwaySSH

/// `slipway serve`: the SSH front, until SIGTERM/SIGINT. Local only: it is not
/// part of the command tree that SSH users reach.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the SSH server.")

    @Option(help: "HOST:PORT to listen on (default: listen from the config file, 0.0.0.0:2222). Port 0 picks a free port.")
    var listen: String?

    func start(core: Core, configPath: String?, logger: Logger) async throws {
        signal(SIGPIPE, SIG_IGN)
        try registerInitialAdmin(core: core, logger: logger)
        do {
            let removed = try core.runs.removeOrphans()
            if removed > 0 { logger.info("removed run containers left by an earlier server", metadata: ["count": "\(removed)"]) }
        } catch {
            logger.warning("could not look for leftover run containers", metadata: ["error": "\(error)"])
        }
        // Detached runs' outputs are read again; the others left running end as interrupted.
        var followed = Set<Int64>()
        do {
            followed = try core.runs.resumeDetachedOutputs()
        } catch {
            logger.warning("could not follow the detached runs of an earlier server", metadata: ["error": "\(error)"])
        }
        do {
            let interrupted = try core.outputs.markInterrupted(except: followed)
            if interrupted > 0 { logger.info("stored outputs left running by an earlier server marked interrupted", metadata: ["count": "\(interrupted)"]) }
        } catch {
            logger.warning("could not mark interrupted outputs", metadata: ["error": "\(error)"])
        }
        for repair in (try? core.cron.endInterruptedRuns()) ?? [] { logger.warning("recovery", metadata: ["repair": "\(repair)"]) }
        // A backup the previous server was writing is incomplete: its temp file goes.
        for repair in core.datastores.removePartialBackups() { logger.warning("recovery", metadata: ["repair": "\(repair)"]) }
        // Deploys the previous server left half done end before any new one can start.
        for repair in try core.deploys.endInterruptedDeploys() { logger.warning("recovery", metadata: ["repair": "\(repair)"]) }
        var options = try SSHServer.Options.parse(listen: listen ?? core.settings.listen, settings: core.settings)
        // git's pre-receive hook calls back into this very binary, with the same state.
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        options.hookCommand = [executable, "--data-dir", core.paths.root] + (configPath.map { ["--config", $0] } ?? []) + ["hook:pre-receive"]
        let server = try SSHServer(core: core, options: options, logger: logger)
        let ssh = SSHService(server: server, grace: TimeInterval(core.settings.shutdownGrace), logger: logger)
        // The proxy comes up (and every app back to its state) while SSH sessions are
        // already served. Shut down in reverse order: the supervisor stops first.
        let proxy = NginxSupervisor(nginx: NginxProxy(settings: core.settings, paths: core.paths), accessLogMaxBytes: core.settings.accessLogMaxBytes,
                                    logger: logger) {
            do {
                try core.deploys.reconcile { logger.warning("recovery", metadata: ["repair": "\($0)"]) }
            } catch {
                logger.error("could not bring every app back to its state", metadata: ["error": "\(error)"])
            }
        }
        let cron = CronScheduler(cron: core.cron, backups: core.datastores, logger: logger, grace: 15)
        // Certificates over ACME (letsencrypt:enable) are renewed by a loop of their own.
        let renewer = CertificateRenewer(acme: core.acme, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [ssh, proxy, cron, renewer], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// On first start with no users, `initial_admin_keys` become the user `admin`.
    private func registerInitialAdmin(core: Core, logger: Logger) throws {
        guard !core.settings.initialAdminKeys.isEmpty, try core.users.isEmpty() else { return }
        let caller = Caller(principal: .localAdmin, command: "serve (initial_admin_keys)")
        let admin = try UserName("admin")
        _ = try core.users.add(admin, admin: true, by: caller)
        for line in core.settings.initialAdminKeys {
            _ = try core.users.addKey(try PublicKey(line: line), to: admin, named: nil, by: caller)
        }
        logger.info("registered initial_admin_keys as user admin", metadata: ["keys": "\(core.settings.initialAdminKeys.count)"])
    }
}

/// The SSH server as a lifecycle service: accept until graceful shutdown, then let
/// running sessions finish for up to `grace` seconds.
struct SSHService: Service {
    let server: SSHServer
    let grace: TimeInterval
    let logger: Logger

    func run() async throws {
        server.start()
        // Tests and scripts wait for this exact line.
        FileHandle.standardOutput.write(Data("listening on \(server.boundAddress)\n".utf8))
        logger.info("listening", metadata: ["address": "\(server.boundAddress)"])
        try? await gracefulShutdown()
        logger.info("shutting down: no new sessions; waiting for running ones", metadata: ["grace_s": "\(Int(grace))"])
        let server = self.server, grace = self.grace
        let left = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: server.stop(grace: grace)) }
        }
        if left > 0 { logger.warning("exiting with sessions still running", metadata: ["sessions": "\(left)"]) }
    }
}

/// `slipway host-key`: the public host key line (for known_hosts) and its fingerprint.
struct HostKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host-key", abstract: "Print the SSH host key and its fingerprint.")

    func print(core: Core) throws -> String {
        let key = try HostKey(paths: core.paths)
        return "\(try key.publicKeyLine())\n256 \(try key.fingerprint()) (ED25519)\n"
    }
}
