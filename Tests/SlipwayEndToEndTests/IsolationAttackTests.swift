import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Attacks on container isolation, each as a hostile tenant would run it (real ssh,
/// git and podman), asserting it is refused or harmless and the victim unchanged.
/// Every Dockerfile carries a nonce so no layer cache can hide a reproduction.
@Suite("Isolation attacks end to end", .serialized)
struct IsolationAttackTests {
    let engine = DockerEngine.locate(configured: nil)
    let builder = "slipway/builder:bookworm"

    /// A server with alice (admin) whose Procfile app `victim` is deployed, and eve, a plain tenant.
    func world() throws -> (server: TestServer, alice: TestUser, eve: TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let eve = try TestUser.register("eve", on: server.slipway)
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8), "secret.txt": Data("victim-secret\n".utf8)])
        let push = try server.git(alice.key, ["push", "-q", server.url("victim"), "main"], in: repo)
        precondition(push.status == 0, push.err)
        return (server, alice, eve)
    }

    /// Destroys every app of the server (their images and networks go with them).
    func destroyApps(_ server: TestServer) {
        let list = (try? server.slipway("apps:list", "--format", "json").out) ?? "[]"
        let names = (try? JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String]) ?? []
        for name in names { _ = try? server.slipway("apps:destroy", name, "--force") }
    }

    /// Pushes `dockerfile` (and `files`) as eve's app `name`.
    func pushDockerfile(_ server: TestServer, _ user: TestUser, app: String, _ dockerfile: String,
                        files: [String: Data] = [:]) throws -> Slipway.Result {
        let repo = try makeRepository(files.merging(["Dockerfile": Data(dockerfile.utf8)]) { $1 })
        // Forced: each call is a new history, as an attacker's retries would be.
        return try server.git(user.key, ["push", "-f", server.url(app), "main"], in: repo)
    }

    var nonce: String { UUID().uuidString.prefix(8).lowercased() }

    /// A container as the engine's API shows it (IP on its network, host pid).
    func inspect(_ name: String) throws -> [String: Any] {
        let raw = try run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/containers/\(name)/json"])
        return (try JSONSerialization.jsonObject(with: Data(raw.out.utf8)) as? [String: Any]) ?? [:]
    }

    func address(of container: String) throws -> String {
        let networks = (try inspect(container)["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: Any] ?? [:]
        return networks.values.compactMap { ($0 as? [String: Any])?["IPAddress"] as? String }.first { !$0.isEmpty } ?? ""
    }

    func publishedPort(of container: String) throws -> Int {
        let ports = (try inspect(container)["NetworkSettings"] as? [String: Any])?["Ports"] as? [String: Any] ?? [:]
        let binding = ports.values.compactMap { ($0 as? [[String: Any]])?.first?["HostPort"] as? String }.first
        return Int(binding ?? "") ?? 0
    }

    /// A python one-liner that prints `label: REACHED` or `label: BLOCKED` for a TCP connect.
    func probe(_ label: String, _ host: String, _ port: Int) -> String {
        #"python3 -c "import socket; s=socket.socket(); s.settimeout(3); print('\#(label): ' + ('BLOCKED' if s.connect_ex(('\#(host)', \#(port))) else 'REACHED'))""#
    }

    // Finding 1: CVE-2024-1753, a bind mount of a symlink made in another stage reads and writes the host as root.
    @Test func aBuildCannotMountAnotherStagesSymlinkToTheHostRoot() throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let marker = "/tmp/slipway-pwned-\(nonce)"
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let push = try pushDockerfile(server, eve, app: "evil", """
            FROM \(builder) AS base
            RUN ln -s / /rootdir && echo \(nonce)
            FROM \(builder)
            RUN --mount=type=bind,from=base,source=/rootdir,destination=/hostroot,rw ls /hostroot\(server.slipway.dataDir) ; touch /hostroot\(marker)
            CMD ["sleep", "1000"]
            """)
        #expect(push.status != 0)
        #expect(push.err.contains("RUN --mount is not allowed"), "\(push.err)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(!push.err.contains("slipway.db"))
        // Continuation lines and a changed escape character do not hide it.
        let hidden = try pushDockerfile(server, eve, app: "evil", """
            # escape=`
            FROM \(builder)
            RUN `
              --mount=type=cache,id=shared-\(nonce),target=/cache echo poisoned > /cache/x
            """)
        #expect(hidden.status != 0 && hidden.err.contains("RUN --mount=type=cache is not allowed"), "\(hidden.err)")
        // A file of the repo cannot stand in for the Dockerfile Slipway builds from.
        let planted = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8),
                                          ".slipway.Dockerfile": Data("FROM \(builder)\nRUN --mount=type=cache,target=/c true\n".utf8)])
        let smuggled = try server.git(eve.key, ["push", "-f", server.url("evil"), "main"], in: planted)
        #expect(smuggled.status != 0 && smuggled.err.contains("a name Slipway's builds use"), "\(smuggled.err)")
        // Nor can a symbolic link swap the vetted Dockerfile for another file.
        let linked = try makeRepository(["real.df": Data("FROM \(builder)\nRUN --mount=type=cache,target=/c true\n".utf8)])
        try FileManager.default.createSymbolicLink(atPath: linked + "/Dockerfile", withDestinationPath: "real.df")
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
        #expect(try run("/usr/bin/git", ["-C", linked, "add", "Dockerfile"]).status == 0)
        #expect(try run("/usr/bin/git", ["-C", linked, "commit", "-q", "-m", "link"], environment: env).status == 0)
        let viaLink = try server.git(eve.key, ["push", "-f", server.url("evil"), "main"], in: linked)
        #expect(viaLink.status != 0 && viaLink.err.contains("is a symbolic link"), "\(viaLink.err)")
    }

    // Finding 10: cache mounts are shared by every tenant of the engine.
    @Test func buildCacheMountsAreRefused() throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let push = try pushDockerfile(server, eve, app: "evil", """
            FROM \(builder)
            run --mount=type=cache,id=pip,target=/root/.cache echo \(nonce) > /root/.cache/poison
            """)
        #expect(push.status != 0 && push.err.contains("Dockerfile line 2: RUN --mount=type=cache is not allowed"), "\(push.err)")
        #expect(try server.ssh(eve.key, "apps:list").out.contains("evil") == false, "a refused first push leaves no app")
    }

    // Finding 2: build steps ran in the host's network namespace (SSH front and apps' loopback ports).
    @Test func buildStepsReachNeitherHostLoopbackNorOtherApps() throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let victimPort = try publishedPort(of: "victim.web.1")
        let victimAddress = try address(of: "victim.web.1")
        #expect(victimPort > 0 && !victimAddress.isEmpty)
        let push = try pushDockerfile(server, eve, app: "evil", """
            FROM \(builder)
            RUN echo \(nonce); \(probe("ssh-front", "127.0.0.1", server.port)); \(probe("victim-loopback", "127.0.0.1", victimPort)); \(probe("victim-network", victimAddress, 5000))
            CMD ["python3", "-m", "http.server", "5000"]
            """)
        #expect(push.status == 0, "\(push.err)")
        for label in ["ssh-front", "victim-loopback", "victim-network"] {
            #expect(push.err.contains("\(label): BLOCKED"), "\(label): \(push.err)")
        }
        #expect(!push.err.contains(": REACHED"))
        // ADD of a URL is fetched by the engine itself, on the host's network: refused.
        let add = try pushDockerfile(server, eve, app: "evil", """
            FROM \(builder)
            ADD http://127.0.0.1:\(victimPort)/secret.txt /stolen-\(nonce)
            """)
        #expect(add.status != 0 && add.err.contains("ADD http://127.0.0.1:\(victimPort)/secret.txt is not allowed"), "\(add.err)")
    }

    // Finding 6: one shared bridge network; a tenant's run reached another tenant's container by IP.
    @Test func aTenantsContainersCannotReachAnotherTenants() throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        #expect(try server.git(eve.key, ["push", "-q", server.url("evil"), "main"], in: repo).status == 0)
        // Destroying an app removes its network: on podman 4.3 that used to delete the
        // rule every network's isolation hung on (netavark 1.4), opening all the others.
        #expect(try server.git(eve.key, ["push", "-q", server.url("gone"), "main"], in: repo).status == 0)
        let destroy = try server.ssh(eve.key, "apps:destroy", "gone", "--force")
        #expect(destroy.status == 0, "\(destroy.err)")
        let victimAddress = try address(of: "victim.web.1")
        let ownAddress = try address(of: "evil.web.1")
        #expect(!victimAddress.isEmpty && !ownAddress.isEmpty && victimAddress != ownAddress)
        let code = #""import socket, sys; s = socket.socket(); s.settimeout(3); print('BLOCKED' if s.connect_ex((sys.argv[1], 5000)) else 'REACHED')""#
        let attack = try server.ssh(eve.key, ["run", "evil", "python3", "-c", code, victimAddress])
        #expect(attack.out == "BLOCKED\n", "\(attack.out) \(attack.err)")
        // Its own app stays reachable: the network isolates apps, not an app from itself.
        let own = try server.ssh(eve.key, ["run", "evil", "python3", "-c", code, ownAddress])
        #expect(own.out == "REACHED\n", "\(own.out) \(own.err)")
    }

    // Finding 7: container root was host root. Each app runs in its own range of unprivileged host uids.
    @Test func tenantCodeRunsAsUnprivilegedHostUsersOfItsOwnRange() throws {
        let (server, alice, eve) = try world()
        defer { destroyApps(server) }
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        #expect(try server.git(eve.key, ["push", "-q", server.url("evil"), "main"], in: repo).status == 0)
        func hostRange(_ user: TestUser, _ app: String) throws -> UInt64 {
            let map = try server.ssh(user.key, "run", app, "cat", "/proc/self/uid_map")
            let fields = map.out.split(whereSeparator: \.isWhitespace)
            #expect(map.status == 0 && fields.count == 3 && fields[0] == "0", "\(map.out) \(map.err)")
            return UInt64(fields.count == 3 ? fields[1] : "") ?? 0
        }
        let victimBase = try hostRange(alice, "victim"), evilBase = try hostRange(eve, "evil")
        #expect(victimBase >= 1 << 31 && evilBase >= 1 << 31 && victimBase != evilBase)
        // The web process on the host: not root, inside the app's range.
        let pid = (try inspect("victim.web.1")["State"] as? [String: Any])?["Pid"] as? Int ?? 0
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: \.isWhitespace).dropFirst().first
        let hostUID = UInt64(uid ?? "") ?? 0
        #expect(pid > 0 && hostUID >= victimBase && hostUID < victimBase + 65_536, "\(status.prefix(400))")
    }

    // Storage written by a uid-1000 Procfile app and by a root Dockerfile app persists across deploys under the namespaces.
    @Test func storageOfNonRootAndRootAppsPersistsAcrossDeploys() throws {
        let (server, alice, eve) = try world()
        defer { destroyApps(server) }
        // The engine's own mount points are refused with a message, not the engine's raw 409.
        for path in ["/proc", "/dev/shm", "/sys/kernel"] {
            let refused = try server.ssh(alice.key, "storage:mount", "victim", "vdata:\(path)")
            #expect(refused.status != 0 && refused.err.hasPrefix("error: ") && refused.err.contains("kernel filesystems"), "\(refused.err)")
        }
        #expect(try server.ssh(alice.key, "storage:mount", "victim", "vdata:/app/data").status == 0)
        let restart = try server.ssh(alice.key, "ps:restart", "victim")
        #expect(restart.status == 0, "\(restart.out) \(restart.err)")
        #expect(try server.ssh(alice.key, ["run", "victim", "sh", "-c", "'echo kept-1000 > /app/data/f'"]).status == 0)
        let root = """
            FROM \(builder)
            RUN echo \(nonce)
            CMD ["python3", "-m", "http.server", "5000"]
            """
        #expect(try pushDockerfile(server, eve, app: "rooty", root).status == 0)
        #expect(try server.ssh(eve.key, "storage:mount", "rooty", "rdata:/data").status == 0)
        #expect(try server.ssh(eve.key, ["run", "rooty", "sh", "-c", "'id -u > /data/f'"]).status == 0)
        // Redeploy both; the data is still there and still writable.
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\nworker: sleep 1000\n".utf8)])
        let redeploy = try server.git(alice.key, ["push", "-q", "-f", server.url("victim"), "main"], in: repo)
        #expect(redeploy.status == 0, "\(redeploy.err)")
        let rootRedeploy = try pushDockerfile(server, eve, app: "rooty", root + "\nENV V=2\n")
        #expect(rootRedeploy.status == 0, "\(rootRedeploy.err)")
        #expect(try server.ssh(alice.key, ["run", "victim", "sh", "-c", "'cat /app/data/f && echo more >> /app/data/f'"]).out == "kept-1000\n")
        #expect(try server.ssh(eve.key, ["run", "rooty", "sh", "-c", "'cat /data/f && echo more >> /data/f'"]).out == "0\n")
        // On the host the files belong to each app's own range, not to root or uid 1000.
        let owners = try run("/usr/bin/find", [server.slipway.dataDir + "/storage", "-name", "f", "-printf", "%u\n"]).out
            .split(separator: "\n").compactMap { UInt64($0) }
        #expect(owners.count == 2 && owners.allSatisfy { $0 >= 1 << 31 }, "\(owners)")
    }

    // Finding 11: images were not namespaced; FROM another app's image read its code.
    @Test func aBuildCannotStartFromAnotherAppsImage() throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let builds = try server.slipway("--as", "alice", "builds:list", "victim", "--format", "json").out
        let image = (try? JSONSerialization.jsonObject(with: Data(builds.utf8)) as? [[String: Any]])?.first?["image"] as? String ?? ""
        #expect(image.hasPrefix("slipway/victim:"), "\(builds)")
        let id = try run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/images/\(image)/json"]).out
        let imageID = ((try? JSONSerialization.jsonObject(with: Data(id.utf8)) as? [String: Any])?["Id"] as? String ?? "").replacingOccurrences(of: "sha256:", with: "")
        #expect(imageID.count == 64)
        for (attempt, dockerfile) in [
            ("by name", "FROM \(image)\nRUN cat /app/secret.txt # \(nonce)\n"),
            ("through localhost/", "FROM localhost/\(image)\n"),
            ("by id", "FROM \(imageID.prefix(12))\n"),
            ("through an ARG", "ARG BASE=\(image)\nFROM ${BASE}\n"),
            ("with COPY --from", "FROM \(builder)\nCOPY --from=\(image) /app/secret.txt /stolen\n"),
        ] {
            let push = try pushDockerfile(server, eve, app: "evil", dockerfile)
            #expect(push.status != 0, "\(attempt)")
            #expect(push.err.contains("not allowed") || push.err.contains("not an image this app may build from"), "\(attempt): \(push.err)")
            #expect(!push.err.contains("victim-secret"), "\(attempt)")
        }
        // Its own earlier image and the builder stay fine to build from.
        let own = try pushDockerfile(server, eve, app: "evil", "FROM \(builder)\nRUN echo \(nonce)\nCMD [\"python3\", \"-m\", \"http.server\", \"5000\"]\n")
        #expect(own.status == 0, "\(own.err)")
    }

    // Finding 13: the helper that looks up an image's user waited forever, as root, with the image's spoofed labels.
    @Test func aHostileImageCannotHangTheDeployOrPassForAnotherApp() async throws {
        let (server, _, eve) = try world()
        defer { destroyApps(server) }
        let hostile = """
            FROM \(builder)
            RUN echo \(nonce) && useradd -u 1234 someone && mv /bin/sh /bin/sh.real && printf '#!/bin/sh.real\\nexec sleep 1000\\n' > /bin/sh && chmod 755 /bin/sh
            LABEL org.slipway.app=victim org.slipway.kind=process org.slipway.type=web
            USER someone
            CMD ["python3", "-m", "http.server", "5000"]
            """
        let push = try pushDockerfile(server, eve, app: "evil", hostile)
        #expect(push.status == 0, "\(push.err)")
        #expect(try server.ssh(eve.key, "storage:mount", "evil", "edata:/data").status == 0)
        // The helper, while it hung, carried Slipway's labels, not the image's claim to be
        // the victim's process. Read from the engine's event log, not by listing
        // containers: under load a list waits on other containers' locks and can miss a
        // helper that lived 10 s. Streamed from before the restart, so that each create
        // is seen as it happens: a later query of the past came back empty in ci24 and
        // again in ci33 (three tries, 2 s apart), with the event in podman's log file.
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let filters = #"{"type":["container"],"event":["create"],"label":["org.slipway.kind=helper","org.slipway.instance=\#(instance)"]}"#
        func helperCreates(in events: String) -> [[String: String]] {
            let created = events.split(separator: "\n").compactMap {
                ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["Actor"] as? [String: Any]
            }.compactMap { $0["Attributes"] as? [String: String] }
            // podman matches an event that carries any one of the labels asked for: keep the helpers.
            return created.filter { $0["org.slipway.kind"] == "helper" && $0["org.slipway.instance"] == instance }
        }
        let stream = try RunningCommand("/usr/bin/curl", ["-sSN", "--unix-socket", "/run/podman/podman.sock", "-G", "http://d/v1.41/events",
                                                          "--data-urlencode", "filters=\(filters)"], environment: [:])
        defer { if stream.process.isRunning { stream.process.signal(SIGKILL) } }
        try await Task.sleep(for: .seconds(1))
        let started = Date()
        let restart = try server.ssh(eve.key, "ps:restart", "evil")
        #expect(restart.status != 0 && restart.err.contains("did not say within"), "\(restart.err)")
        _ = stream.waitFor(#""org.slipway.kind":"helper""#, seconds: 10)
        var helpersMade = helperCreates(in: stream.output)
        var answers = ["stream: \(stream.output)"]
        // A query of the past as well, should the stream have missed it.
        for attempt in 1...3 where helpersMade.isEmpty {
            if attempt > 1 { try await Task.sleep(for: .seconds(2)) }
            let log = try run("/usr/bin/curl", ["-sS", "--max-time", "30", "--unix-socket", "/run/podman/podman.sock", "-G", "http://d/v1.41/events",
                                                "--data-urlencode", "since=\(Int(started.timeIntervalSince1970) - 1)",
                                                "--data-urlencode", "until=\(Int(Date().timeIntervalSince1970) + 1)",
                                                "--data-urlencode", "filters=\(filters)"])
            answers.append("attempt \(attempt): status \(log.status), \(log.err) \(log.out)")
            helpersMade = helperCreates(in: log.out)
        }
        #expect(!helpersMade.isEmpty, "the helper never ran: \(answers)")
        #expect(helpersMade.allSatisfy { $0["org.slipway.app"] == "" && $0["org.slipway.type"] == "" }, "\(helpersMade)")
        #expect(Date().timeIntervalSince(started) < 60)
        // No helper left behind, and nothing of eve's passes for the victim's.
        let helpers = try await engine.listContainers(labels: ["org.slipway.kind": "helper", "org.slipway.instance": instance])
        #expect(helpers.isEmpty, "\(helpers.map(\.name))")
        let victims = try await engine.listContainers(labels: ["org.slipway.app": "victim", "org.slipway.instance": instance])
        let evilImages = Set(try await engine.listContainers(labels: ["org.slipway.app": "evil", "org.slipway.instance": instance]).map(\.image))
        #expect(!victims.isEmpty && victims.allSatisfy { !$0.name.contains("evil") && !evilImages.contains($0.image) },
                "\(victims.map { "\($0.name) \($0.image)" }) vs \(evilImages)")
    }
}
