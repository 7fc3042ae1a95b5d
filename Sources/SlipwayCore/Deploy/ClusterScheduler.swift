import Foundation

/// The port to a cluster scheduler (issue 20): where an app set to `kubernetes` is
/// rolled out instead of this host's engine. `SlipwayKubernetes.KubernetesDeployer`
/// implements it; `slipway` gives one to `Core` when the `kubeconfig` setting names a
/// cluster. Calls block (commands run on plain threads), as the engine's bridge does.
public protocol ClusterScheduler: Sendable {
    /// Rolls `state` out: pushes its image to the registry, applies its objects (running
    /// its predeploy Jobs first when `runTasks`), waits for every Deployment, prunes what
    /// the app has that `state` no longer renders. When a rollout does not become ready,
    /// `previous` (the release serving until now) is applied again and it throws.
    func rollOut(_ state: SchedulerService.AppState, previous: SchedulerService.AppState?, runTasks: Bool,
                 output: @escaping @Sendable (String) -> Void) throws
    /// Runs `command` (argv; a shell's words when one string) with the current release as a
    /// Job, streaming its output; returns the pod's exit status.
    func run(_ state: SchedulerService.AppState, command: [String], output: @escaping @Sendable (String) -> Void) throws -> Int32
}
