import Foundation

/// Turns output chunks into whole lines (a chunk may end mid-line).
public final class LineSplitter: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = Data()
    private let output: (String) -> Void

    public init(output: @escaping (String) -> Void) { self.output = output }

    public func feed(_ data: Data) {
        let lines: [String] = lock.withLock {
            pending.append(data)
            var lines: [String] = []
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending.removeSubrange(pending.startIndex...newline)
            }
            return lines
        }
        lines.forEach(output)
    }

    /// Passes on what is left after the last newline.
    public func flush() {
        let rest = lock.withLock { () -> Data in defer { pending = Data() }; return pending }
        if !rest.isEmpty { output(String(decoding: rest, as: UTF8.self)) }
    }
}
