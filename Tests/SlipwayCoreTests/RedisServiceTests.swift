import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// redis:* shares postgres:'s commands and access (DatastoreCommands); these check what
/// is Redis's own (REDIS_URL, the container, the password's path) and that the two
/// namespaces never answer for each other, from the side of the users who must not get in.
@Suite("Backing services: redis")
struct RedisServiceTests {
    /// bob owns `web` and the redis service `cache`; eve owns `evil`; dave writes web.
    func world() throws -> TestWorld {
        let w = try TestWorld()
        let engine = w.core.engine as! RecordingEngine
        for image in ["slipway/redis:7", "slipway/postgres:15"] {
            engine.images[image] = ImageInfo(id: image, created: nil, size: 1, user: "", labels: [DatastoreService.versionLabel: "7"])
        }
        for name in ["bob", "eve", "dave"] { #expect(w.run(["users:add", name]).status == 0) }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "evil"], asUser: "eve").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "write"], asUser: "bob").status == 0)
        let created = try w.run(["redis:create", "cache"], asUser: "bob")
        #expect(created.status == 0 && created.out.contains("Redis container created: cache"), "\(created.out) \(created.err)")
        return w
    }

    @Test func linkSetsRedisURLAndThePasswordStaysOffCommandLines() throws {
        let w = try world()
        let engine = w.core.engine as! RecordingEngine
        let spec = try #require(engine.specs.first { $0.name == "redis.cache" })
        let password = try w.core.store.read { db in try String.fetchOne(db, sql: "SELECT password FROM services WHERE kind = 'redis'") }!
        #expect(spec.image == "slipway/redis:7" && spec.restartPolicy == RestartPolicy.always)
        #expect(spec.environment["REDIS_PASSWORD"] == password)
        #expect(!(spec.command ?? []).joined(separator: " ").contains(password))
        #expect(spec.binds.contains { $0.hasSuffix(":/data") })

        let linked = try w.run(["redis:link", "cache", "web"], asUser: "bob")
        #expect(linked.status == 0 && linked.out.contains("as REDIS_URL"), "\(linked.err)")
        #expect(try w.core.config.get(EnvKey("REDIS_URL"), in: .app(AppName("web"))) == "redis://:\(password)@redis-cache:6379")
        #expect(engine.calls.contains { $0.hasPrefix("connect redis.cache slipway-") && $0.hasSuffix(" as redis-cache") })
        #expect(!linked.out.contains(password) && !linked.err.contains(password))

        // A writer of the linked app uses it; its info has no Database line and no password.
        let info = try w.run(["redis:info", "cache"], asUser: "dave")
        #expect(info.status == 0 && info.out.contains("redis-cache:6379") && !info.out.contains("Database") && !info.out.contains(password), "\(info.out)")
        let denied = try w.run(["redis:info", "cache", "--show-password"], asUser: "dave")
        #expect(denied.status != 0 && denied.err.contains("needs its owner"))

        #expect(try w.run(["redis:unlink", "cache", "web"], asUser: "bob").status == 0)
        #expect(try w.core.config.get(EnvKey("REDIS_URL"), in: .app(AppName("web"))) == nil)
    }

    /// eve's answers about bob's redis service are those for a missing one, and the
    /// postgres: namespace does not reach a redis service of the same name.
    @Test func strangersAndTheOtherNamespaceSeeNothing() throws {
        let w = try world()
        let before = try w.dump()
        let probes: [[String]] = [
            ["redis:info", "cache"], ["redis:link", "cache", "evil"], ["redis:restart", "cache"],
            ["redis:logs", "cache"], ["redis:destroy", "cache", "--force"],
        ]
        for argv in probes {
            let r = try w.run(argv, asUser: "eve")
            #expect(r.status == 1 && r.err.contains("redis service \"cache\" not found"), "\(argv): \(r.err)")
        }
        for argv in [["postgres:info", "cache"], ["postgres:destroy", "cache", "--force"], ["postgres:link", "cache", "web"]] {
            let r = try w.run(argv, asUser: "bob")
            #expect(r.status == 1 && r.err.contains("postgres service \"cache\" not found"), "\(argv): \(r.err)")
        }
        let list = try w.run(["redis:list", "--format", "json"], asUser: "eve")
        #expect(list.out == "[]\n")
        #expect(try w.run(["postgres:list", "--format", "json"], asUser: "bob").out == "[]\n")
        let dump = try w.dump()
        #expect(dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } == before.split(separator: "\n").filter { !$0.hasPrefix("events:") })
        // The same name in the other namespace is a different service.
        #expect(try w.run(["postgres:create", "cache"], asUser: "eve").status == 0)
        #expect(try w.run(["redis:destroy", "cache", "--force"], asUser: "bob").status == 0)
        #expect(try w.run(["postgres:info", "cache"], asUser: "eve").status == 0)
    }

    @Test func bootstrapBuildsTheRedisImageFromDebiansPackage() throws {
        let w = try world()
        let recipe = DatastoreImages.recipe(.redis, builder: "slipway/builder:bookworm", mirror: "http://deb.example/debian")
        let dockerfile = try #require(recipe.files.first { $0.0 == "Dockerfile" }?.1)
        #expect(dockerfile.contains("FROM slipway/builder:bookworm") && dockerfile.contains("redis-server"))
        // requirepass reaches redis-server through its config file, never its argv.
        #expect(dockerfile.contains("requirepass") && !dockerfile.contains("--requirepass"))
        let unknown = w.run(["services:bootstrap", "mysql"])
        #expect(unknown.status != 0 && unknown.err.contains("postgres or redis"))
    }
}
