/// Redis's glob-style patterns (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`): `*` any run, `?` one byte,
/// `[abc]`, `[^abc]`, `[a-z]` classes, `\x` a literal `x`. Matching is on bytes, as Redis does.
///
/// The matcher backtracks only to the last `*` (the classic two-pointer algorithm), so it takes
/// O(pattern × text) steps whatever the pattern: a hostile `a*a*a*…b` cannot stall the node.
enum Glob {
    /// Whether `text` matches `pattern`.
    static func matches(pattern: String, _ text: String) -> Bool {
        if pattern == "*" { return true }
        return matches(Array(pattern.utf8), Array(text.utf8))
    }

    static func matches(_ p: [UInt8], _ t: [UInt8]) -> Bool {
        var pi = 0
        var ti = 0
        var star: Int? = nil  // index in `p` just after the last `*`
        var starText = 0  // where in `t` that `*` began matching
        while ti < t.count {
            if pi < p.count && p[pi] == UInt8(ascii: "*") {
                while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
                star = pi
                starText = ti
                continue
            }
            if pi < p.count, let next = matchOne(p, pi, t[ti]) {
                pi = next
                ti += 1
                continue
            }
            guard let resume = star else { return false }
            starText += 1
            ti = starText
            pi = resume
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    /// Matches the single-byte token at `p[pi]` (not `*`) against `byte`; the index after the token, or `nil`.
    private static func matchOne(_ p: [UInt8], _ pi: Int, _ byte: UInt8) -> Int? {
        switch p[pi] {
        case UInt8(ascii: "?"):
            return pi + 1
        case UInt8(ascii: "["):
            var i = pi + 1
            let negated = i < p.count && p[i] == UInt8(ascii: "^")
            if negated { i += 1 }
            var matched = false
            while i < p.count && p[i] != UInt8(ascii: "]") {
                if p[i] == UInt8(ascii: "\\") && i + 1 < p.count {
                    if p[i + 1] == byte { matched = true }
                    i += 2
                } else if i + 2 < p.count && p[i + 1] == UInt8(ascii: "-") && p[i + 2] != UInt8(ascii: "]") {
                    let low = min(p[i], p[i + 2])
                    let high = max(p[i], p[i + 2])
                    if byte >= low && byte <= high { matched = true }
                    i += 3
                } else {
                    if p[i] == byte { matched = true }
                    i += 1
                }
            }
            if i < p.count { i += 1 }  // the closing `]`
            return matched != negated ? i : nil
        case UInt8(ascii: "\\") where pi + 1 < p.count:
            return p[pi + 1] == byte ? pi + 2 : nil
        default:
            return p[pi] == byte ? pi + 1 : nil
        }
    }
}
