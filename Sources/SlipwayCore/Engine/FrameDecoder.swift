import Foundation


/// Splits the engine's multiplexed (non-tty) stream into stdout/stderr chunks.
/// Frame: `[stream u8][0 0 0][size u32 big-endian][payload]`; 1 = stdout, 2 = stderr.
public struct FrameDecoder: Sendable {
    private var buffer = Data()

    public init() {}

    /// Adds bytes as they arrive; returns the complete frames among them.
    public mutating func feed(_ bytes: Data) -> [OutputChunk] {
        buffer.append(bytes)
        var chunks: [OutputChunk] = []
        while buffer.count >= 8 {
            let start = buffer.startIndex
            let size = buffer[start + 4..<start + 8].reduce(0) { $0 << 8 | Int($1) }
            guard buffer.count >= 8 + size else { break }
            let payload = buffer[start + 8..<start + 8 + size]
            chunks.append(OutputChunk(stream: buffer[start] == 2 ? .stderr : .stdout, data: Data(payload)))
            buffer.removeFirst(8 + size)
        }
        return chunks
    }
}
