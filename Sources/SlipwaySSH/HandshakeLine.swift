import Foundation

/// Clients that spoke while every handshake place (`max_startups`) was taken, waiting
/// for one. Like the silent set, each costs an fd and a poll entry, nothing more:
/// nothing is read from it, and it has no thread or libssh session yet. They leave in
/// the order they joined as places free up, so a script's burst waits instead of being
/// reset. Bounded twice: a newcomer finding the line full is dropped, and so is one
/// whose login grace time (counted from its accept) passes while it waits.
struct HandshakeLine {
    struct Entry {
        let fd: Int32
        /// Monotonic seconds (`ProcessInfo.systemUptime`) at accept.
        let acceptedAt: TimeInterval
    }

    let capacity: Int
    /// In the order they joined (not always the order of `acceptedAt`: a client may stay
    /// silent for a while before it speaks).
    private(set) var entries: [Entry] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Adds `fd` at the end; false (and nothing added) when the line is full.
    mutating func join(_ fd: Int32, acceptedAt: TimeInterval) -> Bool {
        guard entries.count < capacity else { return false }
        entries.append(Entry(fd: fd, acceptedAt: acceptedAt))
        return true
    }

    /// Removes and returns the first in line.
    mutating func next() -> Entry? { entries.isEmpty ? nil : entries.removeFirst() }

    /// Removes and returns the fds accepted more than `timeout` seconds ago.
    mutating func removeExpired(timeout: TimeInterval, at now: TimeInterval) -> [Int32] {
        let expired = entries.filter { now - $0.acceptedAt >= timeout }.map(\.fd)
        if !expired.isEmpty { remove(Set(expired)) }
        return expired
    }

    /// Removes the given fds (they hung up).
    mutating func remove(_ fds: Set<Int32>) {
        guard !fds.isEmpty else { return }
        entries.removeAll { fds.contains($0.fd) }
    }

    /// Seconds until the first entry's deadline (nil when empty).
    func nextExpiry(timeout: TimeInterval, at now: TimeInterval) -> TimeInterval? {
        entries.map(\.acceptedAt).min().map { max(0, $0 + timeout - now) }
    }
}
