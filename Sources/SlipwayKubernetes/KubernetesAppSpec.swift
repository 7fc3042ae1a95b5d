import SlipwayCore

/// Everything the renderer needs about one release of one app, as plain values:
/// no database, no engine. `KubernetesAppSpec(state:)` builds it from Slipway's
/// state; tests build it by hand.
public struct KubernetesAppSpec: Sendable, Equatable {
    /// The user the app belongs to (its first owner), for the `slipway.dev/tenant` label.
    public var tenant: String
    public var app: String
    /// The release number (`releases:list`), in object and Job names and the release label.
    public var release: Int
    /// The image the cluster pulls (`<server>/<image-repo>/<app>:<release>` with a registry).
    public var image: String
    /// One entry per process type (the Procfile's), in any order.
    public var processes: [Process]
    /// The app's config, PORT included: rendered into a Secret, never inline.
    public var environment: [String: String]
    /// The port web listens on (PORT); the Service and probes point at it.
    public var port: Int
    public var mounts: [Mount]
    /// Every name the app answers to (its default domain first), for the Ingress.
    public var domains: [String]
    public var certificate: Certificate?
    public var cron: [CronEntry]
    /// The IANA zone cron schedules are read in (the server's `cron_timezone`).
    public var cronTimeZone: String
    /// Seconds before a cron run without its own `timeout` is stopped (`cron_timeout`).
    public var cronTimeout: Int
    /// app.json predeploy, then Procfile `release`: one Job each, run in this order.
    public var predeploy: [String]
    /// app.json postdeploy: one Job each, run in this order after the switch (and only
    /// for a new release: `ClusterScheduler.runPostdeployTask`).
    public var postdeploy: [String]
    /// The app-level limits (`resource:limit APP`): the predeploy and postdeploy Jobs'.
    public var taskResources: ResourceLimits
    /// The `run` type's limits: `run`, `run:detached` and cron Jobs'.
    public var runResources: ResourceLimits
    /// The image pull Secret (from `registry:login`), if any.
    public var pullSecret: PullSecret?
    /// The cluster's storage class for claims; nil: the cluster's default.
    public var storageClass: String?
    /// The cluster's ingress class; nil: the cluster's default.
    public var ingressClass: String?

    public init(tenant: String, app: String, release: Int, image: String, processes: [Process], environment: [String: String],
                port: Int = 5000, mounts: [Mount] = [], domains: [String] = [], certificate: Certificate? = nil,
                cron: [CronEntry] = [], cronTimeZone: String = "UTC", cronTimeout: Int = 3600, predeploy: [String] = [], postdeploy: [String] = [],
                taskResources: ResourceLimits = ResourceLimits(), runResources: ResourceLimits = ResourceLimits(), pullSecret: PullSecret? = nil, storageClass: String? = nil, ingressClass: String? = nil) {
        self.tenant = tenant
        self.app = app
        self.release = release
        self.image = image
        self.processes = processes
        self.environment = environment
        self.port = port
        self.mounts = mounts
        self.domains = domains
        self.certificate = certificate
        self.cron = cron
        self.cronTimeZone = cronTimeZone
        self.cronTimeout = cronTimeout
        self.predeploy = predeploy
        self.postdeploy = postdeploy
        self.taskResources = taskResources
        self.runResources = runResources
        self.pullSecret = pullSecret
        self.storageClass = storageClass
        self.ingressClass = ingressClass
    }

    /// One process type and how it runs.
    public struct Process: Sendable, Equatable {
        public var type: String
        /// A shell command (run with /bin/sh -c); empty: the image's own CMD.
        public var command: String
        /// From the formation (`ps:scale`, app.json formation).
        public var replicas: Int
        public var resources: ResourceLimits
        /// app.json healthchecks of this type; `type` startup/liveness/readiness picks
        /// the probe (none: readiness, as the local rollout's checks gate the switch).
        public var checks: [HealthCheck]
        /// `checks:disable`/`checks:skip`: no probes at all.
        public var checksOff: Bool
        /// When `ps:restart` last restarted this type (the pod template's
        /// `slipway.dev/restarted-at`; nil: never, and no annotation).
        public var restartedAt: String?

        public init(type: String, command: String, replicas: Int, resources: ResourceLimits = ResourceLimits(),
                    checks: [HealthCheck] = [], checksOff: Bool = false, restartedAt: String? = nil) {
            self.restartedAt = restartedAt
            self.type = type
            self.command = command
            self.replicas = replicas
            self.resources = resources
            self.checks = checks
            self.checksOff = checksOff
        }
    }

    /// A `storage:mount` of the app.
    public struct Mount: Sendable, Equatable {
        public enum Source: Sendable, Equatable {
            /// Managed storage: a PersistentVolumeClaim of this name.
            case storage(String)
            /// A host directory: refused on a cluster (pods move between nodes).
            case hostPath(String)
        }
        public var source: Source
        public var containerPath: String
        public var readonly: Bool
        /// `deploy`: the process types and deploy task Jobs; `run`: cron (and later `run`).
        public var phases: Set<MountPhase>

        public init(source: Source, containerPath: String, readonly: Bool = false, phases: Set<MountPhase> = [.deploy, .run]) {
            self.source = source
            self.containerPath = containerPath
            self.readonly = readonly
            self.phases = phases
        }
    }

    /// The app's certificate and the names it covers.
    public struct Certificate: Sendable, Equatable {
        public var certificatePEM: String
        public var keyPEM: String
        /// The app's domains it covers (the Ingress's TLS hosts).
        public var names: [String]

        public init(certificatePEM: String, keyPEM: String, names: [String]) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
            self.names = names
        }
    }

    /// An image pull Secret: its `.dockerconfigjson` content.
    public struct PullSecret: Sendable, Equatable {
        public var dockerConfigJSON: String
        public init(dockerConfigJSON: String) { self.dockerConfigJSON = dockerConfigJSON }
    }
}
