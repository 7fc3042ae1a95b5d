import Foundation

/// An exclusive lock shared by every Slipway process on the host (the server, push
/// hooks, the local CLI): `flock` on a file, held while `body` runs. Each call opens
/// its own descriptor, so threads of one process exclude each other too; the kernel
/// drops the lock of a process that dies.
public enum FileLock {
    public static func holding<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw UserFacingError(.unavailable, "cannot open \(path)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return try body()
    }
}
