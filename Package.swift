// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "slipway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "slipway", targets: ["slipway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Kubeconfig files (YAML): about 11 s of a clean debug build on 2 cores.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        /// Debian's libssh (libssh-dev) as a Swift module. Only SlipwayCore's key
        /// parsing and, later, the SSH front import it.
        .systemLibrary(
            name: "CLibSSH",
            pkgConfig: "libssh",
            providers: [.apt(["libssh-dev"])]
        ),
        /// Domain values, the access model, the state store and the services.
        .target(
            name: "SlipwayCore",
            dependencies: [
                "CLibSSH",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                // certs:add: PEM certificates and keys, parsed and matched.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        /// The one command tree that serves the local CLI and SSH.
        .target(
            name: "SlipwayCommands",
            dependencies: [
                "SlipwayCore", "SlipwayKubernetes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        /// The container engine, spoken to only through the Docker Engine REST API
        /// over a unix socket (podman's compatible service or Docker).
        .target(
            name: "SlipwayEngine",
            dependencies: [
                "SlipwayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// nginx behind SlipwayCore's `Proxy` port: the files it reads, `nginx -t`,
        /// reloads, and the managed nginx's process (started, watched, restarted).
        .target(
            name: "SlipwayNginx",
            dependencies: [
                "SlipwayCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The host's process table behind SlipwayCore's `HostProcesses` port (deploy
        /// locks name the process that holds them).
        .target(
            name: "SlipwayHost",
            dependencies: ["SlipwayCore"]
        ),
        /// The Kubernetes scheduler (issue 20): an app's state rendered as Kubernetes
        /// objects, deterministic, and the `KubernetesCluster` port an API client implements.
        .target(
            name: "SlipwayKubernetes",
            dependencies: [
                "SlipwayCore", .product(name: "Crypto", package: "swift-crypto"),
                // The API client (server-side apply over HTTPS, the kubeconfig's CA and client certificate).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        /// Tests only: an in-process Kubernetes API server (SSA, list by label, delete,
        /// Deployment and Job status, pod logs) the client and the deployer are tested on.
        .target(
            name: "KubernetesFakeAPI",
            dependencies: ["SlipwayCore", "SlipwayKubernetes", .product(name: "AsyncHTTPClient", package: "async-http-client")],
            path: "Tests/KubernetesFakeAPI",
            resources: [.copy("Fixtures")]
        ),
        /// The embedded SSH server: the only code that talks to libssh's server API.
        .target(
            name: "SlipwaySSH",
            dependencies: [
                "CLibSSH", "SlipwayCore", "SlipwayCommands",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "slipway",
            dependencies: [
                "SlipwayCommands", "SlipwayCore", "SlipwayEngine", "SlipwayHost", "SlipwayKubernetes", "SlipwayNginx", "SlipwaySSH",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SlipwayCoreTests",
            dependencies: ["SlipwayCore", "SlipwayCommands", "SlipwayKubernetes", "KubernetesFakeAPI", "SlipwayEngine", "SlipwayHost", "SlipwaySSH", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SlipwayNginxTests",
            dependencies: ["SlipwayCore", "SlipwayNginx", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SlipwayKubernetesTests",
            dependencies: ["SlipwayCore", "SlipwayKubernetes", "KubernetesFakeAPI"],
            exclude: ["Golden"]
        ),
        .testTarget(
            name: "SlipwayEndToEndTests",
            // KubernetesFakeAPI: the cluster the kubernetes scheduler's end-to-end suite deploys to.
            dependencies: ["SlipwayCore", "SlipwayEngine", "SlipwayKubernetes", "KubernetesFakeAPI"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
