/// Splits an SSH exec string into words the way a POSIX shell (and bash's
/// `$'...'`, which `printf %q` produces) would, without ever running a shell:
/// metacharacters such as `;`, `|` or `$(...)` are just characters.
public enum ShellWords {
    /// Exec strings longer than this are refused (a command line, not a payload).
    public static let maximumLength = 64 * 1024

    public static func split(_ input: String) throws -> [String] {
        guard input.utf8.count <= maximumLength else {
            throw UserFacingError.invalid("the command is longer than \(maximumLength) bytes; pass large values on stdin or with config:set --encoded")
        }
        var words: [String] = []
        var word: String?
        var scalars = input.unicodeScalars.makeIterator()

        func unterminated(_ quote: String) -> UserFacingError {
            .invalid("the command has an unterminated \(quote) quote")
        }

        while let c = scalars.next() {
            switch c {
            case " ", "\t":
                if let w = word { words.append(w); word = nil }
            case "\n", "\r":
                throw UserFacingError.invalid("the command contains a line break outside quotes; quote the value, or use printf %q")
            case "\0":
                throw UserFacingError.invalid("the command contains a NUL byte")
            case "\\":
                guard let next = scalars.next() else { throw UserFacingError.invalid("the command ends with a lone backslash") }
                if next != "\n" { word = (word ?? "") + String(next) }
            case "'":
                var w = word ?? ""
                var closed = false
                while let q = scalars.next() {
                    if q == "'" { closed = true; break }
                    w.unicodeScalars.append(q)
                }
                guard closed else { throw unterminated("single") }
                word = w
            case "\"":
                var w = word ?? ""
                var closed = false
                while let q = scalars.next() {
                    if q == "\"" { closed = true; break }
                    if q == "\\" {
                        guard let e = scalars.next() else { break }
                        // Inside double quotes a backslash escapes only these.
                        if !["$", "`", "\"", "\\", "\n"].contains(e) { w.unicodeScalars.append("\\") }
                        if e != "\n" { w.unicodeScalars.append(e) }
                        continue
                    }
                    w.unicodeScalars.append(q)
                }
                guard closed else { throw unterminated("double") }
                word = w
            case "$":
                var lookahead = scalars
                if lookahead.next() == "'" {
                    scalars = lookahead
                    word = (word ?? "") + (try ansiCQuoted(&scalars))
                } else {
                    word = (word ?? "") + "$"
                }
            default:
                word = (word ?? "") + String(c)
            }
        }
        if let w = word { words.append(w) }
        return words
    }

    /// The body of bash's `$'...'` after the opening quote, through the closing one.
    private static func ansiCQuoted(_ scalars: inout String.UnicodeScalarView.Iterator) throws -> String {
        var out = String.UnicodeScalarView()
        while let c = scalars.next() {
            if c == "'" { return String(out) }
            guard c == "\\" else { out.append(c); continue }
            guard let e = scalars.next() else { break }
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "e", "E": out.append("\u{1B}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "x", "u", "U", "0", "1", "2", "3", "4", "5", "6", "7":
                let (radix, maxDigits): (Int, Int) = switch e {
                case "x": (16, 2)
                case "u": (16, 4)
                case "U": (16, 8)
                default: (8, 3)
                }
                var digits = e == "x" || e == "u" || e == "U" ? "" : String(e)
                var look = scalars
                while digits.count < maxDigits, let d = look.next(), d.properties.isASCIIHexDigit, Int(String(d), radix: radix) != nil {
                    digits.unicodeScalars.append(d)
                    scalars = look
                }
                guard let value = UInt32(digits, radix: radix), value != 0, let scalar = Unicode.Scalar(value) else {
                    throw UserFacingError.invalid("the command has an invalid or NUL escape \\\(e)\(digits) in $'...'")
                }
                out.append(scalar)
            default:
                out.append(e)  // \\, \', \", \?
            }
        }
        throw UserFacingError.invalid("the command has an unterminated $'...' quote")
    }
}
