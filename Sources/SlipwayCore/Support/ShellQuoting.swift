/// Quoting for the shell-readable export formats of `config:export`.
///
/// Both work on Unicode scalars, never on `Character`s: a quote followed by a
/// combining mark (U+0301) is one `Character` that compares unequal to `'`, and
/// CR LF is one `Character` equal to neither `\r` nor `\n`, yet a shell sees
/// the quote and a line reader sees the line break.
public enum ShellQuoting {
    /// `'...'`, with each `'` written as `'\''`: any text (newlines included) survives `eval`.
    public static func singleQuoted(_ value: String) -> String {
        var out = String.UnicodeScalarView(["'"])
        for scalar in value.unicodeScalars {
            if scalar == "'" { out.append(contentsOf: #"'\''"#.unicodeScalars) } else { out.append(scalar) }
        }
        out.append("'")
        return String(out)
    }

    /// `"..."` with `\\`, `\"`, `\$`, `` \` ``, `\n`, `\r` escaped: one line per variable,
    /// as dotenv-style env files expect.
    public static func doubleQuotedEscaped(_ value: String) -> String {
        var out = String.UnicodeScalarView(["\""])
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: #"\\"#.unicodeScalars)
            case "\"": out.append(contentsOf: #"\""#.unicodeScalars)
            case "$": out.append(contentsOf: #"\$"#.unicodeScalars)
            case "`": out.append(contentsOf: #"\`"#.unicodeScalars)
            case "\n": out.append(contentsOf: #"\n"#.unicodeScalars)
            case "\r": out.append(contentsOf: #"\r"#.unicodeScalars)
            default: out.append(scalar)
            }
        }
        out.append("\"")
        return String(out)
    }
}
