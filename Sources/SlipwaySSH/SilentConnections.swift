import Foundation

/// New connections that have not sent a byte yet. Each costs an fd and a poll entry,
/// nothing more: no thread, no libssh session, no handshake place. A real client
/// sends its version line at once (RFC 4253 4.2) and leaves this set on its first
/// byte; an idle flood only churns it: when it is full the oldest is dropped to make
/// room, and whatever stays silent past the banner timeout is dropped too.
struct SilentConnections {
    struct Entry {
        let fd: Int32
        /// Monotonic seconds (`ProcessInfo.systemUptime`) at accept.
        let since: TimeInterval
    }

    let capacity: Int
    /// Oldest first.
    private(set) var entries: [Entry] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var isEmpty: Bool { entries.isEmpty }

    /// Adds `fd`; returns the entry pushed out to make room (the oldest), if any.
    mutating func add(_ fd: Int32, at now: TimeInterval) -> Entry? {
        let evicted = entries.count >= capacity ? entries.removeFirst() : nil
        entries.append(Entry(fd: fd, since: now))
        return evicted
    }

    /// Removes and returns the oldest entry's fd.
    mutating func removeOldest() -> Int32? { entries.isEmpty ? nil : entries.removeFirst().fd }

    /// Removes and returns the fds silent for longer than `timeout`.
    mutating func removeExpired(timeout: TimeInterval, at now: TimeInterval) -> [Int32] {
        let expired = entries.prefix { now - $0.since > timeout }
        entries.removeFirst(expired.count)
        return expired.map(\.fd)
    }

    /// Removes the given fds (they spoke, or hung up).
    mutating func remove(_ fds: Set<Int32>) {
        guard !fds.isEmpty else { return }
        entries.removeAll { fds.contains($0.fd) }
    }

    /// Seconds until the oldest entry expires (nil when empty).
    func nextExpiry(timeout: TimeInterval, at now: TimeInterval) -> TimeInterval? {
        entries.first.map { max(0, $0.since + timeout - now) }
    }
}
