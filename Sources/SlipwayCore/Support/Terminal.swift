import Foundation

/// The terminal an SSH client asked for (`ssh -t`): its type and its size, which
/// the client may change at any time. Only `run` gives it to a container; other
/// commands just write lines the client's raw-mode terminal can show.
public final class Terminal: @unchecked Sendable {
    public let type: String
    private let lock = NSLock()
    private var currentSize: (columns: Int, rows: Int)
    private var resizeHandler: (@Sendable (Int, Int) -> Void)?

    public init(type: String, columns: Int, rows: Int) {
        self.type = type
        currentSize = (columns, rows)
    }

    public var size: (columns: Int, rows: Int) { lock.withLock { currentSize } }

    /// Called by the SSH connection when the client's window changes size.
    public func resize(columns: Int, rows: Int) {
        let handler = lock.withLock { () -> (@Sendable (Int, Int) -> Void)? in
            currentSize = (columns, rows)
            return resizeHandler
        }
        handler?(columns, rows)
    }

    /// `handler` gets every later size change (nil stops that).
    public func onResize(_ handler: (@Sendable (Int, Int) -> Void)?) {
        lock.withLock { resizeHandler = handler }
    }
}
