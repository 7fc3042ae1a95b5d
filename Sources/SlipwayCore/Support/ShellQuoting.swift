/// Quoting for the shell-readable export formats of `config:export`.
public enum ShellQuoting {
    /// `'...'`, with each `'` written as `'\''`: any text (newlines included) survives `eval`.
    public static func singleQuoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// `"..."` with `\\`, `\"`, `\$`, `` \` ``, `\n`, `\r` escaped: one line per variable,
    /// as dotenv-style env files expect.
    public static func doubleQuotedEscaped(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "$": out += "\\$"
            case "`": out += "\\`"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}
