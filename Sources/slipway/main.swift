import Foundation
import Logging
import SlipwayCommands
import SlipwayCore
import SlipwayEngine
import SlipwayHost
import SlipwayKubernetes
import SlipwayNginx
import SlipwaySSH

/// `slipway [--data-dir DIR] [--config FILE] [--as USER] <command> [args...]`
///
/// The local CLI runs as the built-in local admin: whoever can open the data
/// directory (root on the host) manages the server.
let stderr = FileOutput(handle: .standardError)
let stdout = FileOutput(handle: .standardOutput)

func fail(_ error: UserFacingError) -> Never {
    stderr.write("\(error)\n")
    exit(error.exitCode)
}

/// The raw argv, refusing invalid UTF-8 instead of letting it be silently repaired.
func argumentsCheckingUTF8() -> [String] {
    (1..<Int(CommandLine.argc)).map { index in
        guard let raw = CommandLine.unsafeArgv[index], let argument = String(validatingCString: raw) else {
            fail(.invalid("argument \(index) is not valid UTF-8; pass names and values as UTF-8 text"))
        }
        return argument
    }
}

/// Strips the leading local-only options; returns them and the rest.
func globalOptions(_ argv: [String]) -> (dataDir: String?, config: String?, rest: [String]) {
    var rest = argv[...]
    var dataDir: String?
    var config: String?
    while let first = rest.first {
        var name = first, value: String?
        if let equals = first.firstIndex(of: "="), first.hasPrefix("--") {
            name = String(first[..<equals])
            value = String(first[first.index(after: equals)...])
        }
        guard name == "--data-dir" || name == "--config" else { break }
        rest.removeFirst()
        if value == nil {
            guard let next = rest.first else { fail(UserFacingError(.usage, "\(name) needs a value")) }
            value = next
            rest.removeFirst()
        }
        if name == "--data-dir" { dataDir = value } else { config = value }
    }
    return (dataDir, config, Array(rest))
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
let logger = Logger(label: "slipway")

let options = globalOptions(argumentsCheckingUTF8())
let core: Core
do {
    var settings = try Settings.load(path: options.config ?? Settings.defaultConfigPath, required: options.config != nil)
    if let dir = options.dataDir ?? ProcessInfo.processInfo.environment["SLIPWAY_DATA_DIR"] {
        guard dir.hasPrefix("/") || !dir.isEmpty else { fail(.invalid("the data directory must not be empty")) }
        settings.dataDir = URL(fileURLWithPath: dir).standardizedFileURL.path
    }
    let engine = DockerEngine.locate(configured: settings.engineSocket)
    core = try Core(settings: settings, engine: engine, probe: AsyncHTTPProbe(),
                    proxy: NginxProxy(settings: settings, paths: DataPaths(root: settings.dataDir)), processes: LocalProcesses(),
                    acme: LegoClient(), cluster: KubernetesDeployer.configured(settings, engine: engine))
} catch let error as UserFacingError {
    fail(error)
} catch {
    fail(.invalid("cannot open the state database: \(error); check the data directory (--data-dir) and its permissions"))
}

// Local-only commands: the server itself and its host key. SSH users never reach these.
switch options.rest.first {
case "serve":
    do {
        let serve = try Serve.parse(Array(options.rest.dropFirst()))
        try await serve.start(core: core, configPath: options.config, logger: logger)
        exit(0)
    } catch let error as UserFacingError {
        fail(error)
    } catch let error as SSHServerError {
        fail(.invalid(error.description))
    } catch {
        stderr.write(Serve.fullMessage(for: error) + "\n")
        exit(Serve.exitCode(for: error).rawValue == 0 ? 0 : 2)
    }
case PreReceiveHook.name:
    exit(PreReceiveHook.run(core: core, environment: ProcessInfo.processInfo.environment, stdin: StandardInput(), stdout: stdout, stderr: stderr))
case "host-key":
    do {
        stdout.write(try HostKeyCommand().print(core: core))
        exit(0)
    } catch {
        fail(.invalid("\(error)"))
    }
default:
    let runner = CommandRunner(core: core, logger: logger)
    let status = runner.run(options.rest, as: .localAdmin, stdout: stdout, stderr: stderr, stdin: StandardInput())
    exit(status)
}
