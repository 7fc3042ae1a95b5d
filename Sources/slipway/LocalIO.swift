import Foundation
import SlipwayCommands

/// The process's stdout or stderr.
struct FileOutput: TextOutput {
    let handle: FileHandle
    func write(_ text: String) { _ = write(bytes: Data(text.utf8)) }
    func write(bytes: Data) -> Bool { (try? handle.write(contentsOf: bytes)) != nil }
}

/// The process's stdin.
struct StandardInput: InputSource {
    var isInteractive: Bool { isatty(0) == 1 }

    func readAll(limit: Int) throws -> Data? {
        var data = Data()
        while let chunk = try FileHandle.standardInput.read(upToCount: 64 * 1024), !chunk.isEmpty {
            data.append(chunk)
            if data.count > limit { return nil }
        }
        return data
    }

    func readChunk(max: Int) throws -> Data {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = read(0, &buffer, max)
            if n >= 0 { return Data(buffer[0..<n]) }
            if errno != EINTR { return Data() }
        }
    }

    func readLine(limit: Int) throws -> Data? {
        var line = Data()
        while let byte = try FileHandle.standardInput.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") {
            line.append(byte)
            if line.count > limit { return nil }
        }
        return line
    }
}
