import Testing
@testable import SlipwayEngine

/// Only a registry on this host's loopback is pushed to without TLS verification:
/// look-alike names keep it.
@Suite struct LoopbackRegistryTests {
    @Test func onlyLoopbackRegistriesSkipTLSVerification() {
        for plain in ["127.0.0.1:5000/slipway/web", "127.8.9.10/a", "localhost:5000/slipway/web", "localhost/x", "[::1]:5000/x"] {
            #expect(DockerEngine.isLoopbackRegistry(plain), "\(plain)")
        }
        for verified in ["registry.example.com/slipway/web", "127.0.0.1.evil.example/x", "localhost.evil.example:5000/x",
                         "10.0.0.5:5000/x", "127.0.0.256/x", "slipway/web", "127.0.0.1", "128.0.0.1:5000/x", "[::2]/x"] {
            #expect(!DockerEngine.isLoopbackRegistry(verified), "\(verified)")
        }
    }
}
