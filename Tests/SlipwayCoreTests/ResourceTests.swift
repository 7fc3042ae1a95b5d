import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// `resource:*` and the limits every container gets, on a temp store (no engine).
@Suite("Resource limits")
struct ResourceTests {
    /// alice (admin), bob (owner of `web`), carol (write on web), dave (read on web).
    func world(_ settings: @escaping (inout Settings) -> Void = { _ in }) throws -> TestWorld {
        let w = try TestWorld(settings: settings)
        for (name, admin) in [("alice", true), ("bob", false), ("carol", false), ("dave", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "carol", "write"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "read"], asUser: "bob").status == 0)
        return w
    }

    /// Every table but the audit log, to show a refused command changed nothing.
    func state(_ w: TestWorld) throws -> [Substring] {
        try w.dump().split(separator: "\n").filter { !$0.hasPrefix("events") }
    }

    func limits(_ w: TestWorld, _ type: String?) throws -> ResourceLimits {
        try w.core.resources.limits(for: AppName("web"), processType: type)
    }

    @Test func quantitiesAreReadAsDokkuAndDockerWriteThem() throws {
        #expect(ResourceQuantity.memory("512m") == 512 << 20)
        #expect(ResourceQuantity.memory("1G") == 1 << 30)
        #expect(ResourceQuantity.memory("100") == 100 << 20, "a bare number is MiB, as Dokku")
        #expect(ResourceQuantity.memory("65536k") == 64 << 20)
        #expect(ResourceQuantity.memory("1048576b") == 1 << 20)
        #expect(ResourceQuantity.memory("256mb") == 256 << 20)
        for bad in ["", "m", "1.5g", "-1", "1e9", "512m --privileged", "99999999999g", "0x10m", " 5m", "１２m"] {
            #expect(ResourceQuantity.memory(bad) == nil, "\(bad)")
        }
        #expect(throws: UserFacingError.self) { try ResourceQuantity.parseMemory("0", option: "--memory") }
        #expect(throws: UserFacingError.self) { try ResourceQuantity.parseMemory("1m", option: "--memory") }
        #expect(try ResourceQuantity.parseCPUs("0.5", option: "--cpu") == 500_000_000)
        #expect(try ResourceQuantity.parseCPUs("1.25", option: "--cpu") == 1_250_000_000)
        for bad in ["0", "0.00", "-1", "1.", ".5", "1.234", "nan", "inf", "1e3", ""] {
            #expect(throws: UserFacingError.self, "\(bad)") { try ResourceQuantity.parseCPUs(bad, option: "--cpu") }
        }
        for bad in ["0", "-1", "1.5", "", "9999999999"] {
            #expect(throws: UserFacingError.self, "\(bad)") { try ResourceQuantity.parsePids(bad, option: "--pids") }
        }
        #expect(ResourceQuantity.formatMemory(1536 << 20) == "1536m" && ResourceQuantity.formatMemory(2 << 30) == "2g")
        #expect(ResourceQuantity.formatCPUs(500_000_000) == "0.5" && ResourceQuantity.formatCPUs(1_250_000_000) == "1.25"
                && ResourceQuantity.formatCPUs(2_000_000_000) == "2")
    }

    @Test func settingsTakeDefaultsAndCapsAndRefuseNonsense() throws {
        let settings = try Settings.parse("default_memory = \"256m\"\ndefault_cpus = \"0.5\"\ndefault_pids = 100\nmax_memory = \"1g\"\nmax_cpus = 1\nmax_pids = 200\n", source: "t")
        #expect(settings.defaultLimits == ResourceLimits(memoryBytes: 256 << 20, nanoCPUs: 500_000_000, pids: 100))
        #expect(settings.maxLimits == ResourceLimits(memoryBytes: 1 << 30, nanoCPUs: 1_000_000_000, pids: 200))
        #expect(try Settings.parse("default_cpus = 1.5", source: "t").defaultLimits.nanoCPUs == 1_500_000_000)
        for (bad, says) in [("default_memory = \"0\"", "not a memory size"), ("default_memory = \"lots\"", "not a memory size"),
                            ("max_pids = 0", "not a number of processes"), ("default_cpus = \"-1\"", "not a number of CPUs"),
                            ("default_memory = \"8g\"", "default_memory (8g) is more than max_memory (4g)"),
                            ("max_cpus = \"0.5\"", "default_cpus (1) is more than max_cpus (0.5)"), ("default_pids = true", "must be a value")] {
            #expect {
                try Settings.parse(bad, source: "t")
            } throws: { error in
                "\(error)".contains(says) && "\(error)".hasPrefix("error: config file t")
            }
        }
    }

    @Test func typeOverridesAppOverridesServerDefault() throws {
        let w = try world()
        // Nothing set: the server's defaults, for every kind of container.
        for type in [nil, "web", "run", "build"] {
            #expect(try limits(w, type) == ResourceLimits(memoryBytes: 512 << 20, nanoCPUs: 1_000_000_000, pids: 512), "\(type ?? "tasks")")
        }
        let set = try w.run(["resource:limit", "--memory", "256m", "--pids", "100", "web"], asUser: "bob")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out == """
            =====> Setting resource limits for web
                   memory: 256m
                   pids: 100
                   takes effect at the next deploy or ps:restart web; run and builds use it from now on

            """)
        #expect(try w.run(["resource:limit", "--memory", "64m", "--cpu", "0.5", "--process-type", "worker", "web"], asUser: "carol").status == 0)
        #expect(try w.run(["resource:reserve", "--memory", "32m", "--process-type", "worker", "web"], asUser: "carol").status == 0)
        #expect(try limits(w, "worker") == ResourceLimits(memoryBytes: 64 << 20, memoryReservationBytes: 32 << 20, nanoCPUs: 500_000_000, pids: 100))
        #expect(try limits(w, "web") == ResourceLimits(memoryBytes: 256 << 20, nanoCPUs: 1_000_000_000, pids: 100))
        #expect(try limits(w, nil) == limits(w, "web"), "deploy tasks take the app's values")

        let report = try w.run(["resource:report", "web"], asUser: "dave")
        #expect(report.status == 0, "\(report.err)")
        let worker = report.out.split(separator: "\n").first { $0.hasPrefix("worker ") }.map(String.init) ?? ""
        #expect(worker.contains("64m (worker)") && worker.contains("0.5 (worker)") && worker.contains("100 (app)") && worker.contains("32m (worker)"), "\(report.out)")
        let run = report.out.split(separator: "\n").first { $0.hasPrefix("run ") }.map(String.init) ?? ""
        #expect(run.contains("256m (app)") && run.contains("1 (server)"), "\(report.out)")

        let json = try JSONSerialization.jsonObject(with: Data(try w.run(["resource:report", "web", "--format", "json"], asUser: "dave").out.utf8)) as? [String: Any]
        let effective = json?["effective"] as? [String: [String: Any]]
        #expect(effective?["worker"]?["memory"] as? Int == 64 << 20)
        #expect(effective?["worker"]?["cpus"] as? Double == 0.5)
        #expect(effective?["build"]?["pids"] as? Int == 100)
        #expect((json?["max"] as? [String: Any])?["memory"] as? Int == 4 << 30)

        // A reservation applies to containers; builds take none (the engine's /build has no such setting).
        #expect(try w.run(["resource:reserve", "--memory", "16m", "web"], asUser: "carol").status == 0)
        #expect(try limits(w, "web").memoryReservationBytes == 16 << 20 && limits(w, "build").memoryReservationBytes == nil)

        // `clear` as a value, and the -clear commands, make a value inherit again.
        #expect(try w.run(["resource:limit", "--cpu", "clear", "--process-type", "worker", "web"], asUser: "carol").status == 0)
        #expect(try limits(w, "worker").nanoCPUs == 1_000_000_000)
        #expect(try w.run(["resource:limit-clear", "--process-type", "worker", "web"], asUser: "carol").status == 0)
        #expect(try limits(w, "worker") == ResourceLimits(memoryBytes: 256 << 20, memoryReservationBytes: 32 << 20, nanoCPUs: 1_000_000_000, pids: 100))
        #expect(try w.run(["resource:reserve-clear", "web"], asUser: "carol").status == 0)
        #expect(try w.run(["resource:limit-clear", "web"], asUser: "carol").status == 0)
        #expect(try limits(w, "worker") == limits(w, nil))
        #expect(try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM resource_settings") } == 0)
        // Each change is an audit event.
        let events = try w.run(["events", "-n", "50"]).out
        #expect(events.contains("resource:limit") && events.contains("memory 64m, cpu 0.5") && events.contains("resource:limit-clear"), "\(events)")
    }

    @Test func theServersCapsBindTenantsAndAdmins() throws {
        let w = try world()
        let before = try state(w)
        let tenant = try w.run(["resource:limit", "--memory", "8g", "web"], asUser: "bob")
        #expect(tenant.status == 1)
        #expect(tenant.err == "error: --memory 8g is more than this server allows (the server allows at most 4g; ask an admin)\n")
        let admin = try w.run(["resource:limit", "--cpu", "3", "--process-type", "web", "web"], asUser: "alice")
        #expect(admin.status == 1 && admin.err.contains("(the server allows at most 2; raise max_cpus in the server's slipway.toml)"), "\(admin.err)")
        #expect(try w.run(["resource:limit", "--pids", "5000", "web"], asUser: "bob").err.contains("at most 4096"))
        #expect(try w.run(["resource:reserve", "--memory", "5g", "web"], asUser: "bob").err.contains("at most 4g"))
        // One refused value refuses the whole command.
        #expect(try w.run(["resource:limit", "--memory", "128m", "--pids", "999999", "web"], asUser: "bob").status == 1)
        #expect(try state(w) == before)
        // Values set before an admin lowered a cap are cut to it when a container is made.
        #expect(try w.run(["resource:limit", "--memory", "2g", "--pids", "4000", "web"], asUser: "bob").status == 0)
        let lowered = try TestWorld { $0.dataDir = w.core.settings.dataDir; $0.maxLimits.memoryBytes = 1 << 30; $0.maxLimits.pids = 1000 }
        #expect(try lowered.core.resources.limits(for: AppName("web"), processType: "web") == ResourceLimits(memoryBytes: 1 << 30, nanoCPUs: 1_000_000_000, pids: 1000))
    }

    @Test func writersSetReadersReportOthersSeeNothing() throws {
        let w = try world()
        #expect(try w.run(["users:add", "eve"]).status == 0)
        let before = try state(w)
        let reader = try w.run(["resource:limit", "--memory", "64m", "web"], asUser: "dave")
        #expect(reader.status == 1 && reader.err.hasPrefix("error: "), "\(reader.err)")
        for argv in [["resource:limit-clear", "web"], ["resource:reserve", "--memory", "8m", "web"], ["resource:reserve-clear", "web"]] {
            #expect(try w.run(argv, asUser: "dave").status == 1, "\(argv)")
        }
        let stranger = try w.run(["resource:report", "web"], asUser: "eve")
        #expect(stranger.status == 1 && stranger.err.hasPrefix("error: app \"web\" not found"))
        #expect(try state(w) == before)
        #expect(try w.run(["resource:report", "web"], asUser: "dave").status == 0)
        // Without an app: only the apps the caller can read.
        #expect(try w.run(["apps:create", "other"], asUser: "eve").status == 0)
        let all = try w.run(["resource:report"], asUser: "dave")
        #expect(all.out.contains("=====> web resource information") && !all.out.contains("other"), "\(all.out)")
        let json = try JSONSerialization.jsonObject(with: Data(try w.run(["resource:report", "--format", "json"], asUser: "eve").out.utf8)) as? [[String: Any]]
        #expect(json?.map { $0["app"] as? String } == ["other"])
    }

    /// ATTACK: a tenant passes zero, negative, huge or engine-shaped values hoping for "no limit".
    /// EXPECTED: `error:`, a non-zero exit, and nothing changed.
    @Test func attackerValuesAreRefusedAndChangeNothing() throws {
        let w = try world()
        #expect(try w.run(["resource:limit", "--memory", "256m", "web"], asUser: "bob").status == 0)
        let before = try state(w)
        let attempts: [[String]] = [
            ["--memory", "0"], ["--memory=-1"], ["--memory", "-1"], ["--memory", "99999999999999999999g"], ["--memory", "9223372036854775807b"],
            ["--memory", "512m --privileged"], ["--memory", "1m"], ["--cpu", "0"], ["--cpu=-2"], ["--cpu", "1e9"], ["--pids", "0"], ["--pids=-1"],
            ["--pids", "unlimited"], ["--memory-swap", "-1"], ["--privileged"], ["--cap-add", "SYS_ADMIN"], ["--process-type", "../web"],
            ["--process-type", "_default_"], ["--process-type", "Web;rm"],
        ]
        for extra in attempts {
            let result = try w.run(["resource:limit"] + extra + ["web"], asUser: "bob")
            #expect(result.status != 0 && result.err.hasPrefix("error: ") && result.out.isEmpty, "\(extra): \(result.out) \(result.err)")
        }
        #expect(try w.run(["resource:reserve", "--memory", "300m", "web"], asUser: "bob").err
                .contains("a memory reservation of 300m is more than the 256m memory limit web runs under"))
        #expect(try state(w) == before)
        #expect(try limits(w, "web").memoryBytes == 256 << 20)
    }

    @Test func outOfMemoryMessagesNameTheLimitAndTheFix() throws {
        let settings = Settings()
        let app = try AppName("web")
        #expect(OutOfMemory.reason(exitCode: 137, oomKilled: true, memoryLimit: 64 << 20, app: app, processType: "run", settings: settings)
                == "was killed: it used more than its 64 MiB memory limit; raise it with resource:limit --memory 128m --process-type run web")
        #expect(OutOfMemory.reason(exitCode: 137, oomKilled: false, memoryLimit: 512 << 20, app: app, processType: nil, settings: settings)
                == "was killed (status 137): most likely it used more than its 512 MiB memory limit; raise it with resource:limit --memory 1g web")
        #expect(OutOfMemory.reason(exitCode: 1, oomKilled: false, memoryLimit: 64 << 20, app: app, processType: nil, settings: settings) == nil)
        #expect(OutOfMemory.reason(exitCode: 137, oomKilled: true, memoryLimit: 4 << 30, app: app, processType: "web", settings: settings)?
                .hasSuffix("that is the most this server allows (max_memory); ask an admin") == true)
        let podman = "the build failed: building at STEP \"RUN python3 -c \"b=bytearray(300*1024*1024)\"\": while running runtime: exit status 137"
        #expect(OutOfMemory.buildMessage(podman, memoryLimit: 64 << 20, app: app, settings: settings)
                == "the build was killed at STEP \"RUN python3 -c \\\"b=bytearray(300*1024*1024)\\\"\": it used more than its 64 MiB memory limit; raise it with resource:limit --memory 128m --process-type build web")
        #expect(OutOfMemory.buildMessage("the build failed: exit status 1", memoryLimit: 64 << 20, app: app, settings: settings) == nil)
    }
}
