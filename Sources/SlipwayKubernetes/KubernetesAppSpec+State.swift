import SlipwayCore

extension KubernetesAppSpec {
    /// The spec of an app's current release, from what SlipwayCore gathered
    /// (`Core.clusterState(of:)`): the release's plan, config and formation as
    /// frozen, the app's current limits, checks, mounts, domains, certificate and
    /// cron, and the registry settings.
    public init(state: SchedulerService.AppState) {
        let snapshot = state.snapshot
        let processes = snapshot.plan.processes.keys.sorted().map { type in
            Process(type: type, command: snapshot.plan.processes[type] ?? "",
                    replicas: snapshot.formation[type] ?? (type == "web" ? 1 : 0),
                    resources: state.limits[type] ?? ResourceLimits(),
                    checks: snapshot.plan.healthchecks[type] ?? [],
                    checksOff: state.checks.checkMode(of: type) != nil,
                    restartedAt: state.restartedAt[type])
        }
        var environment = snapshot.environment
        if environment["PORT"] == nil { environment["PORT"] = "5000" }
        let mounts = state.mounts.map { mount in
            let source: Mount.Source = switch mount.source {
            case .storage(let name): .storage(name.rawValue)
            case .hostPath(let path): .hostPath(path.rawValue)
            }
            return Mount(source: source, containerPath: mount.containerPath, readonly: mount.readonly, phases: mount.phases)
        }
        self.init(tenant: state.tenant, app: state.app.rawValue, release: state.release,
                  image: Self.image(state), processes: processes, environment: environment,
                  port: Int(environment["PORT"] ?? "") ?? 5000, mounts: mounts, domains: state.domains,
                  certificate: state.certificate.map { Certificate(certificatePEM: $0.chain, keyPEM: $0.key, names: $0.names) },
                  cron: state.cron, cronTimeZone: state.settings.cronTimezone, cronTimeout: state.settings.cronTimeout,
                  predeploy: snapshot.plan.predeploy, postdeploy: snapshot.plan.postdeploy,
                  taskResources: state.taskLimits, runResources: state.runLimits,
                  pullSecret: state.dockerConfigJSON.map(PullSecret.init),
                  storageClass: state.settings.kubeStorageClass, ingressClass: state.settings.kubeIngressClass)
    }

    /// `<server>/<image-repo>/<app>:<release>` (image-repo defaults to `slipway`); the
    /// image on this host when no registry is set (a cluster cannot pull that one:
    /// `registry:set` is the first step of SCALE-OUT).
    static func image(_ state: SchedulerService.AppState) -> String {
        guard let server = state.registry.server else { return state.localImage }
        return "\(server)/\(state.registry.imageRepo ?? "slipway")/\(state.app):\(state.release)"
    }
}
