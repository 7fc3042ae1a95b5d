import Foundation
import Testing
@testable import SlipwayCore
@testable import SlipwayNginx

/// The nginx config rendered from a site, and nginx's own check of it (the real
/// `nginx -t` on a temp data dir; no nginx runs, so nothing reloads).
@Suite("nginx: rendered config and its check")
struct NginxProxyTests {
    @Test func theRenderedConfigServesRedirectsAndRefusesAsTheSiteSays() throws {
        var settings = Settings()
        settings.proxyPort = 8080
        settings.tlsPort = 8443
        let nginx = NginxProxy(settings: settings, paths: DataPaths(root: "/data"))
        let app = try AppName("web")
        let idle = nginx.render(Site(app: app, names: ["web.localhost"], endpoints: []))
        #expect(idle.contains("return 503 \"web has no running web process"))
        #expect(!idle.contains("upstream"))

        let site = Site(app: app, names: ["web.localhost", "www.example.com"], endpoints: ["127.0.0.1:40001", "127.0.0.1:40002"],
                        tls: .init(certificatePath: "/data/certs/1/server.crt", keyPath: "/data/certs/1/server.key", names: ["www.example.com"]))
        let text = nginx.render(site)
        #expect(text.contains("server 127.0.0.1:40001 max_fails=1 fail_timeout=2s;\n    server 127.0.0.1:40002"))
        // Relative to nginx's prefix (the data dir's nginx/, its working directory), so workers can reopen it.
        let log = "    access_log logs/web.access.log combined buffer=32k flush=1s;\n"
        #expect(text.contains("listen 8080;\n    server_name web.localhost;\n\(log)    location / {\n        proxy_pass http://slipway-web;"))
        // WebSocket's upgrade through per-app maps: no per-request script in the server.
        #expect(text.contains("map $http_upgrade $slipway_connection_web { default \"\"; websocket upgrade; }"))
        #expect(!text.contains("if (") && !text.contains("set $"))
        #expect(text.contains("proxy_set_header Host $host:8080;") && text.contains("proxy_set_header Host $host:8443;"))
        #expect(text.contains("proxy_set_header Connection $slipway_connection_web;"))
        // Variables named after the app, '-' as '_' (app names have no '_'): two apps' maps never clash.
        let dashed = nginx.render(Site(app: try AppName("my-app"), names: ["my-app.localhost"], endpoints: ["127.0.0.1:40001"]))
        #expect(dashed.contains("map $http_upgrade $slipway_upgrade_my_app {") && dashed.contains("proxy_set_header Upgrade $slipway_upgrade_my_app;"))
        #expect(text.contains("listen 8080;\n    server_name www.example.com;\n\(log)    location / { return 301 https://$host:8443$request_uri; }"))
        // ACME's HTTP-01 challenges reach the client's loopback port on every HTTP server, the redirecting one too.
        let challenge = "location ^~ /.well-known/acme-challenge/ {\n        proxy_pass http://127.0.0.1:8402;"
        #expect(text.components(separatedBy: challenge).count == 3, "\(text)")
        #expect(idle.contains(challenge) && !idle.contains("\n    return 503"), "a server-level return would answer the challenge: \(idle)")
        #expect(text.contains("listen 8443 ssl http2;\n    server_name www.example.com;\n\(log)    ssl_certificate /data/certs/1/server.crt;"))
        // On the schemes' own ports the Host an app gets has no port.
        settings.proxyPort = 80
        settings.tlsPort = 443
        let standard = NginxProxy(settings: settings, paths: DataPaths(root: "/data")).render(site)
        // Two app servers and, on HTTP, two challenge locations.
        #expect(standard.components(separatedBy: "proxy_set_header Host $host;").count == 5, "\(standard)")
    }

    @Test func aSiteNginxRefusesLeavesTheLiveFileAsItWas() throws {
        var settings = Settings()
        settings.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-nginx-\(UUID().uuidString)").path
        settings.proxyPort = 18080
        defer { try? FileManager.default.removeItem(atPath: settings.dataDir) }
        let nginx = NginxProxy(settings: settings, paths: DataPaths(root: settings.dataDir))
        let web = try AppName("web"), api = try AppName("api")
        try nginx.apply(Site(app: web, names: ["web.localhost", "www.example.com"], endpoints: ["127.0.0.1:40001"]))
        let live = try String(contentsOfFile: nginx.configPath(for: web), encoding: .utf8)
        #expect(live.contains("server_name web.localhost www.example.com;"))

        // Another app claiming the same name: nginx only warns; Slipway refuses.
        #expect(throws: UserFacingError.self) { try nginx.apply(Site(app: api, names: ["api.localhost", "www.example.com"], endpoints: [])) }
        #expect(!FileManager.default.fileExists(atPath: nginx.configPath(for: api)))
        // A change of web's own that still conflicts leaves web's file as it was.
        try nginx.apply(Site(app: api, names: ["api.localhost"], endpoints: []))
        #expect(throws: UserFacingError.self) { try nginx.apply(Site(app: web, names: ["web.localhost", "api.localhost"], endpoints: [])) }
        #expect(try String(contentsOfFile: nginx.configPath(for: web), encoding: .utf8) == live)

        try nginx.remove(app: api)
        #expect(!FileManager.default.fileExists(atPath: nginx.configPath(for: api)))
    }
}
