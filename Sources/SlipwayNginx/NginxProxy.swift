import Foundation
import SlipwayCore

/// Sends each app's HTTP(S) traffic to its current web containers through nginx.
/// One config file per app, rendered from a `Site` (validated names, loopback
/// addresses, paths Slipway chose), checked with `nginx -t` on a staging copy of
/// the whole config before it replaces the live file, then a graceful reload.
///
/// Managed mode (the default): `slipway serve` runs nginx with its config under
/// `<data-dir>/nginx`; nginx is a daemon of its own, so apps keep serving while
/// the Slipway server restarts. System mode: the host's nginx includes
/// `nginx_include_dir`, which Slipway owns; a change is kept only if the system's
/// whole config still passes `nginx -t`. Its process (pid files, reloads, starts)
/// is in NginxProcess.swift.
public struct NginxProxy: Proxy {
    public static let executable = "/usr/sbin/nginx"
    let settings: Settings
    /// Managed: nginx's prefix (main config, pid, logs, temp files). System: only the lock and staging.
    let directory: String

    public init(settings: Settings, paths: DataPaths) {
        self.settings = settings
        directory = paths.root + "/nginx"
    }

    public var isManaged: Bool { settings.proxyMode == .managed }
    /// Where the per-app files live (the live config).
    public var appsDirectory: String { isManaged ? directory + "/apps" : settings.nginxIncludeDir }
    var mainConfig: String { isManaged ? directory + "/nginx.conf" : settings.nginxConfig }
    var pidFile: String { directory + "/nginx.pid" }

    /// The app's config file, for `proxy:report`.
    public func configPath(for app: AppName) -> String { "\(appsDirectory)/\(app).conf" }

    /// Where nginx logs the app's requests (the combined format), in both modes:
    /// `proxy:logs` reads it, `rotateAccessLogs` keeps it bounded.
    var accessLogDirectory: String { directory + "/logs" }
    public func accessLogPath(for app: AppName) -> String { "\(accessLogDirectory)/\(app).access.log" }
    /// The access log as the app's config names it. Managed: relative to nginx's prefix,
    /// which is `./` with the data dir's `nginx/` as the master's working directory (see
    /// `ensureRunning`), so a worker (nobody) reopens it from its inherited working
    /// directory at a rotation without searching the 0700 data dir above it. System: absolute.
    func renderedAccessLogPath(for app: AppName) -> String { isManaged ? "logs/\(app).access.log" : accessLogPath(for: app) }

    /// Renders the site, validates the whole config with it, makes it live and reloads.
    public func apply(_ site: Site) throws {
        try prepare()
        try exclusive {
            let rendered = render(site)
            let path = configPath(for: site.app)
            let previous = try? String(contentsOfFile: path, encoding: .utf8)
            if previous == rendered, !isManaged || isRunning { return }
            try validate(replacing: site.app, with: rendered)
            try write(rendered, to: path)
            if !isManaged {
                // The system's own config may clash with ours (a server_name it serves too): keep ours only if the whole passes.
                let check = try ProcessRunner.run(Self.executable, ["-t", "-c", mainConfig])
                if let problem = Self.problem(check) {
                    restore(previous, at: path)
                    throw UserFacingError(.conflict, "the system nginx rejected the config for \(site.app), so the previous one was kept: \(problem)")
                }
            }
            do { try reload() } catch {
                // The live file goes back to what nginx last took, and nginx is told so:
                // a reload that only timed out may still load the new file, and an undo
                // of this change then finds the file unchanged and reloads nothing.
                restore(previous, at: path)
                try? reload()
                throw error
            }
        }
    }

    /// Drops the app's config (apps:destroy, apps:rename).
    public func remove(app: AppName) throws {
        try exclusive {
            // The logs first: a name taken again later must not find them, even if the reload fails.
            for path in [configPath(for: app), accessLogPath(for: app), accessLogPath(for: app) + ".1"] { try? FileManager.default.removeItem(atPath: path) }
            try reload()
        }
    }

    // MARK: Rendering

    func render(_ site: Site) -> String {
        let upstream = "slipway-\(site.app)"
        var text = "# Written by Slipway from its state; edits are overwritten at the next change.\n"
        /// The server block's body, for a listen port and its scheme's default port.
        let serve: (_ port: Int, _ standardPort: Int) -> String
        if site.endpoints.isEmpty {
            // In a location, not at the server level: a server-level `return` would answer
            // ACME's challenge requests too (see `challenge` below).
            serve = { _, _ in """
                    location / {
                        default_type text/plain;
                        return 503 "\(site.app) has no running web process; ps:start \(site.app) or git push it\\n";
                    }
                """ }
        } else {
            text += "upstream \(upstream) {\n"
            for endpoint in site.endpoints { text += "    server \(endpoint) max_fails=1 fail_timeout=2s;\n" }
            // Idle connections kept to the app, each reused for many requests: a new
            // upstream connection per request costs more than the proxying itself.
            text += "    keepalive 64;\n    keepalive_requests 10000;\n}\n"
            // A WebSocket request is passed on as one, and its connection becomes a tunnel;
            // every other request goes over the pooled keep-alive connections, which need an
            // empty `Connection:`. Only WebSocket: an `h2c` upgrade would tunnel requests past
            // nginx's log and forwarding headers. Two `map`s (string keys match ignoring case),
            // named after the app because this file is all Slipway writes in system mode: a
            // map costs a hash lookup when the header is there, where a server-level `set`/`if`
            // ran a regex script on every request (Benchmarks/proxy.sh measured the difference).
            let variable = site.app.rawValue.replacingOccurrences(of: "-", with: "_")
            text += "map $http_upgrade $slipway_upgrade_\(variable) { default \"\"; websocket $http_upgrade; }\n"
            text += "map $http_upgrade $slipway_connection_\(variable) { default \"\"; websocket upgrade; }\n"
            // `Host` is the name nginx routed on (never a client's other header), with the
            // port when it is not the scheme's default, as apps build URLs from it.
            serve = { port, standardPort in """
                    location / {
                        proxy_pass http://\(upstream);
                        proxy_http_version 1.1;
                        proxy_set_header Upgrade $slipway_upgrade_\(variable);
                        proxy_set_header Connection $slipway_connection_\(variable);
                        proxy_set_header Host \(port == standardPort ? "$host" : "$host:\(port)");
                        proxy_set_header X-Real-IP $remote_addr;
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                        proxy_set_header X-Forwarded-Proto $scheme;
                        proxy_set_header X-Forwarded-Port $server_port;
                        proxy_set_header X-Request-Start "t=${msec}";
                        proxy_next_upstream error timeout http_502 http_503;
                    }
                """ }
        }
        // Buffered: a line costs no write of its own; `flush` bounds how late `proxy:logs -t` sees it.
        let log = "    access_log \(renderedAccessLogPath(for: site.app)) combined buffer=32k flush=1s;\n"
        func server(_ listen: String, _ names: [String], _ body: String) -> String {
            "server {\n    listen \(listen);\n    server_name \(names.joined(separator: " "));\n\(log)\(body)\n}\n"
        }
        // Every HTTP server answers ACME's HTTP-01 challenges for its names, whatever the
        // app: they go to the ACME client's loopback listener (only up while an order
        // runs; otherwise nginx answers 502), never to the app and never redirected.
        let challenge = """

                location ^~ /.well-known/acme-challenge/ {
                    proxy_pass http://127.0.0.1:\(settings.acmeChallengePort);
                    proxy_set_header Host $host;
                    proxy_connect_timeout 2s;
                }
            """
        if !site.plainNames.isEmpty { text += server("\(settings.proxyPort)", site.plainNames, serve(settings.proxyPort, 80) + challenge) }
        if let tls = site.tls, !tls.names.isEmpty {
            let port = settings.tlsPort == 443 ? "" : ":\(settings.tlsPort)"
            text += server("\(settings.proxyPort)", tls.names, "    location / { return 301 https://$host\(port)$request_uri; }" + challenge)
            text += server("\(settings.tlsPort) ssl http2", tls.names, """
                    ssl_certificate \(tls.certificatePath);
                    ssl_certificate_key \(tls.keyPath);
                \(serve(settings.tlsPort, 443))
                """)
        }
        return text
    }

    /// The main config: everything nginx writes stays under the data dir.
    func renderMain(includeDirectory: String) -> String {
        // HTTPS for a name no app has a certificate for: refused, never another app's certificate.
        let tlsDefaultServer = !Self.rejectsUnknownTLSNames ? ""
            : "server { listen \(settings.tlsPort) ssl http2 default_server; server_name _; ssl_reject_handshake on; }\n    "
        // The error log relative to the prefix, as the access logs (`renderedAccessLogPath`):
        // workers reopen it at every rotation too.
        return """
        # Written by Slipway (managed nginx).
        worker_processes auto;
        pid \(pidFile);
        error_log error.log warn;
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
            # Room for the longest DNS names (253 characters).
            server_names_hash_bucket_size 512;
            server {
                listen \(settings.proxyPort) default_server;
                server_name _;
                default_type text/plain;
                return 404 "no app is served at this address\\n";
            }
            \(tlsDefaultServer)ssl_protocols TLSv1.2 TLSv1.3;
            ssl_session_cache shared:slipway:1m;
            include \(includeDirectory)/*.conf;
        }

        """
    }

    /// `ssl_reject_handshake` needs nginx 1.19.4 (Debian 12 has 1.22; Ubuntu 22.04 has
    /// 1.18, where an unknown name over HTTPS gets the first app's certificate instead).
    static let rejectsUnknownTLSNames: Bool = {
        guard let result = try? ProcessRunner.run(executable, ["-v"]),
              let version = (result.stderr + result.stdout).split(separator: "/").last?.split(separator: " ").first else { return true }
        let parts = version.split(separator: ".").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return parts.lexicographicallyPrecedes([1, 19, 4]) == false
    }()

    // MARK: Validation

    func prepare() throws {
        let fm = FileManager.default
        for dir in [appsDirectory, directory + "/tmp", accessLogDirectory] { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        guard isManaged else { return }
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
        let result = try ProcessRunner.run(Self.executable, ["-t", "-p", directory, "-c", staging + "/nginx.conf"])
        if let problem = Self.problem(result) {
            throw UserFacingError(.conflict, "the proxy config for \(app) did not validate, so the live one was kept: \(problem)")
        }
    }

    /// What is wrong with a config `nginx -t` checked, if anything. A name two servers
    /// claim is only a warning to nginx (the first file wins): here it is an error, or
    /// a tenant could take a name another site serves.
    static func problem(_ check: ProcessRunner.Result) -> String? {
        let lines = check.stderr.split(separator: "\n").filter { !$0.contains("syntax is ok") && !$0.contains("test is successful") }
        if check.status != 0 { return lines.joined(separator: " / ") }
        let conflicts = lines.filter { $0.contains("conflicting server name") }
        return conflicts.isEmpty ? nil : conflicts.joined(separator: " / ")
    }

    private func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else { throw UserFacingError(.conflict, "cannot write \(path)") }
    }

    /// Puts back the file as it was before a change (none: no file).
    private func restore(_ previous: String?, at path: String) {
        if let previous { try? write(previous, to: path) } else { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Serializes config changes and starts across processes (the server, push hooks, the local CLI).
    func exclusive<T>(_ body: () throws -> T) throws -> T {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try FileLock.holding(directory + "/lock", body)
    }
}
