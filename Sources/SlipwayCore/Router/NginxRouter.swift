import Foundation

/// Sends each app's HTTP traffic to its current web containers through nginx.
/// One config file per app, rendered from state only (validated names and
/// loopback addresses), checked with `nginx -t` on a staging copy of the whole
/// config before it replaces the live file, then a graceful reload.
///
/// Managed mode (the default): `slipway serve` runs nginx with its config under
/// `<data-dir>/nginx`; nginx is a daemon of its own, so apps keep serving while
/// the Slipway server restarts.
public struct NginxRouter: Sendable {
    public static let executable = "/usr/sbin/nginx"
    let settings: Settings
    let directory: String

    public init(settings: Settings, paths: DataPaths) {
        self.settings = settings
        directory = paths.root + "/nginx"
    }

    var appsDirectory: String { directory + "/apps" }
    var mainConfig: String { directory + "/nginx.conf" }
    var pidFile: String { directory + "/nginx.pid" }

    /// The address users reach the app at.
    public func url(for app: AppName) -> String {
        "http://\(app).\(settings.globalDomain)\(settings.proxyPort == 80 ? "" : ":\(settings.proxyPort)")"
    }

    /// The app's config file, for `proxy:report`.
    public func configPath(for app: AppName) -> String { "\(appsDirectory)/\(app).conf" }

    /// Renders the app's server block for `endpoints` (none: a 503 page naming the
    /// app), validates the whole config with it, makes it live and reloads.
    public func publish(app: AppName, endpoints: [String]) throws {
        try prepare()
        let lock = try exclusive()
        defer { close(lock) }
        let rendered = render(app: app, endpoints: endpoints)
        if (try? String(contentsOfFile: configPath(for: app), encoding: .utf8)) == rendered, isRunning { return }
        try validate(replacing: app, with: rendered)
        try write(rendered, to: configPath(for: app))
        try reload()
    }

    /// Drops the app's config (apps:destroy).
    public func remove(app: AppName) throws {
        let lock = try exclusive()
        defer { close(lock) }
        try? FileManager.default.removeItem(atPath: configPath(for: app))
        try reload()
    }

    // MARK: Rendering

    func render(app: AppName, endpoints: [String]) -> String {
        let upstream = "slipway-\(app)"
        let serverName = "\(app).\(settings.globalDomain)"
        var text = "# Written by Slipway from its state; edits are overwritten at the next deploy.\n"
        if endpoints.isEmpty {
            text += """
                server {
                    listen \(settings.proxyPort);
                    server_name \(serverName);
                    default_type text/plain;
                    return 503 "\(app) has no running web process; ps:start \(app) or git push it\\n";
                }

                """
            return text
        }
        text += "upstream \(upstream) {\n"
        for endpoint in endpoints { text += "    server \(endpoint) max_fails=1 fail_timeout=2s;\n" }
        text += "    keepalive 16;\n}\n"
        text += """
            server {
                listen \(settings.proxyPort);
                server_name \(serverName);
                location / {
                    proxy_pass http://\(upstream);
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_set_header Host $host;
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Forwarded-Proto $scheme;
                    proxy_next_upstream error timeout http_502 http_503;
                }
            }

            """
        return text
    }

    /// The main config: everything nginx writes stays under the data dir.
    func renderMain(includeDirectory: String) -> String {
        """
        # Written by Slipway (managed nginx).
        worker_processes 1;
        pid \(pidFile);
        error_log \(directory)/error.log warn;
        events { worker_connections 1024; }
        http {
            access_log off;
            # Workers run as nobody and cannot write under the data dir: stream bodies, never spool them.
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
            client_max_body_size 100m;
            client_body_temp_path \(directory)/tmp/body;
            proxy_temp_path \(directory)/tmp/proxy;
            fastcgi_temp_path \(directory)/tmp/fastcgi;
            uwsgi_temp_path \(directory)/tmp/uwsgi;
            scgi_temp_path \(directory)/tmp/scgi;
            server_names_hash_bucket_size 128;
            server {
                listen \(settings.proxyPort) default_server;
                server_name _;
                default_type text/plain;
                return 404 "no app is served at this address\\n";
            }
            include \(includeDirectory)/*.conf;
        }

        """
    }

    // MARK: Validation and reload

    private func prepare() throws {
        let fm = FileManager.default
        for dir in [appsDirectory, directory + "/tmp"] { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let main = renderMain(includeDirectory: appsDirectory)
        if (try? String(contentsOfFile: mainConfig, encoding: .utf8)) != main { try write(main, to: mainConfig) }
    }

    /// `nginx -t` on a copy of the live config with the app's file replaced.
    private func validate(replacing app: AppName, with rendered: String) throws {
        let fm = FileManager.default
        let staging = directory + "/staging-\(UUID().uuidString)"
        defer { try? fm.removeItem(atPath: staging) }
        try fm.createDirectory(atPath: staging + "/apps", withIntermediateDirectories: true)
        for file in (try? fm.contentsOfDirectory(atPath: appsDirectory)) ?? [] where file.hasSuffix(".conf") && file != "\(app).conf" {
            try fm.copyItem(atPath: "\(appsDirectory)/\(file)", toPath: "\(staging)/apps/\(file)")
        }
        try write(rendered, to: "\(staging)/apps/\(app).conf")
        // The staging copy gets its own pid path: `nginx -t` must not touch the live one.
        let main = renderMain(includeDirectory: staging + "/apps").replacingOccurrences(of: "pid \(pidFile);", with: "pid \(staging)/nginx.pid;")
        try write(main, to: staging + "/nginx.conf")
        let result = try ProcessRunner.run(Self.executable, ["-t", "-q", "-p", directory, "-c", staging + "/nginx.conf"])
        guard result.status == 0 else {
            throw UserFacingError(.conflict, "the proxy config for \(app) did not validate, so the live one was kept: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    private func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else { throw UserFacingError(.conflict, "cannot write \(path)") }
    }

    /// The pid of the running managed nginx, if any.
    var runningPID: pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0 else { return nil }
        return pid
    }

    public var isRunning: Bool { runningPID != nil }

    /// Graceful reload (SIGHUP: new workers take the new config, old ones finish
    /// their requests). Nothing to do while nginx is not running: `ensureRunning` starts it with the live files.
    public func reload() throws {
        guard let pid = runningPID else { return }
        let before = Self.children(of: pid)
        kill(pid, SIGHUP)
        // The reload is done once the master has started workers with the new config
        // (the old ones then stop accepting): wait for that, so that "deployed" means
        // the new config answers.
        for _ in 0..<500 {
            let now = Self.children(of: pid)
            if !now.isEmpty && !now.isSubset(of: before) { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        Thread.sleep(forTimeInterval: 0.05)
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

    /// Starts the managed nginx when it is not running (called by `slipway serve`,
    /// at start and whenever its supervisor finds nginx gone). Returns true if it started one.
    @discardableResult
    public func ensureRunning() throws -> Bool {
        try prepare()
        if isRunning { return false }
        let lock = try exclusive()
        defer { close(lock) }
        if isRunning { return false }
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw UserFacingError(.unavailable, "nginx is not installed (\(Self.executable)); scripts/setup.sh installs it")
        }
        let result = try ProcessRunner.runDaemonizing(Self.executable, ["-p", directory, "-c", mainConfig], logFile: directory + "/start.log")
        guard result.status == 0 else {
            throw UserFacingError(.unavailable, "nginx did not start: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Its pid file appears once the config is read; until then a reload would be lost.
        for _ in 0..<300 where !isRunning { Thread.sleep(forTimeInterval: 0.01) }
        return true
    }

    /// Serializes config changes and starts across processes (the server, push hooks,
    /// the local CLI): a file lock, released when the returned fd is closed.
    private func exclusive() throws -> Int32 {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open(directory + "/lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw UserFacingError(.unavailable, "cannot open \(directory)/lock") }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return fd
    }
}
