/// DNS names as Slipway accepts them (RFC 1123 labels, ASCII only), so nothing a
/// user types can reach the proxy's configuration as anything but a name.
public enum DomainName {
    public static func isValid(_ name: String) -> Bool {
        guard (1...253).contains(name.utf8.count), !name.hasSuffix("."), !name.hasPrefix(".") else { return false }
        // No top-level domain is all digits: this keeps IPv4 addresses (the server's own) out.
        if let last = name.split(separator: ".").last, last.allSatisfy(\.isNumber) { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-" else { return false }
            return label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        }
    }
}
