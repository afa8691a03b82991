import Foundation

/// Replaces every secret value in a stream of output chunks with `********`, in every form a
/// step commonly prints it, also when it is split across chunks.
///
/// The forms of a value (see `forms(of:)`): the value itself, each line of a multiline value,
/// and of each of those its base64 (standard and URL alphabets, with and without padding, and
/// the part that stays the same wherever it sits inside a longer base64 run), its hex (lower
/// and upper case) and its URL encodings (`%20` and `+` for a space).
///
/// Forms are matched longest first, and a match is decided only once it can no longer grow
/// into a longer form (`token` is not masked while `token123` may still follow). Only the
/// tail of what was seen that could still grow into a form is held back, so output without
/// secrets passes through with no delay and, when nothing is masked, without a copy.
public struct SecretMasker: Sendable {
    public static let mask = Array("********".utf8)
    /// Secrets, lines of secrets and derived forms shorter than this are ignored: masking them
    /// would garble ordinary output.
    public static let minimumLength = 4
    private let patterns: PatternSet?
    private var pending = Data()

    public init(secrets: [String]) {
        let forms = Self.forms(of: secrets)
        patterns = forms.isEmpty ? nil : PatternSet(forms)
    }

    public var isEmpty: Bool { patterns == nil }

    /// How many byte strings (secrets, their lines and their encodings) are looked for.
    public var formCount: Int { patterns?.count ?? 0 }

    /// Masks `chunk` and returns what can be released now.
    public mutating func feed(_ chunk: Data) -> Data {
        guard let patterns, !chunk.isEmpty else { return chunk }
        var input = chunk
        if !pending.isEmpty {
            input = pending
            input.append(chunk)
        }
        let (output, held) = patterns.masking(input, final: false)
        pending = held
        return output
    }

    /// Releases whatever was held back, masked, at the end of the output.
    public mutating func flush() -> Data {
        defer { pending = Data() }
        guard let patterns, !pending.isEmpty else { return Data() }
        return patterns.masking(pending, final: true).output
    }

    /// Masks a whole text at once.
    public func masking(_ text: String) -> String {
        guard let patterns else { return text }
        return String(decoding: patterns.masking(Data(text.utf8), final: true).output, as: UTF8.self)
    }
}

// MARK: - The forms of a secret

extension SecretMasker {
    /// Every byte string masked for `secrets`, longest first.
    static func forms(of secrets: [String]) -> [[UInt8]] {
        var values = Set<[UInt8]>()
        for secret in secrets {
            values.insert(Array(secret.utf8))
            // Line tools (`head -1`, `grep`) print one line of a multiline secret on its own.
            if secret.contains(where: \.isNewline) {
                for line in secret.split(whereSeparator: \.isNewline) {
                    values.insert(Array(line.trimmingCharacters(in: .whitespaces).utf8))
                }
            }
        }
        var forms = Set<[UInt8]>()
        for value in values where value.count >= minimumLength {
            forms.insert(value)
            forms.formUnion(encodings(of: value))
        }
        // A derived form under the minimum (the shifted base64 core of a short value, say) is
        // skipped like a short value: it would match by chance in ordinary output.
        return forms.filter { $0.count >= minimumLength }.sorted { $0.count > $1.count }
    }

    /// The encodings of `value` a step commonly prints.
    static func encodings(of value: [UInt8]) -> [[UInt8]] {
        var forms: [[UInt8]] = []
        for alphabet in [Base64.standard, Base64.url] {
            let padded = Base64.encode(value, alphabet: alphabet)
            forms.append(padded)
            forms.append(Array(padded.prefix { $0 != UInt8(ascii: "=") }))
            // `echo $SECRET | base64`, or the secret inside a file or JSON that is encoded: the
            // value starts at byte offset 0, 1 or 2 of a group of three, and only the characters
            // made of its bits alone are the same whatever surrounds it.
            for offset in 0..<3 {
                forms.append(Base64.stableCore(of: value, atOffset: offset, alphabet: alphabet))
            }
        }
        // `base64` wraps at 76 columns and `openssl base64` at 64: each line of the encoding of
        // a long value (one that starts the encoded input) on its own.
        let standard = Base64.encode(value, alphabet: Base64.standard)
        let core = Base64.stableCore(of: value, atOffset: 0, alphabet: Base64.standard)
        for width in [76, 64] {
            for encoded in [standard, core] where encoded.count > width {
                for start in stride(from: 0, to: encoded.count, by: width) {
                    forms.append(Array(encoded[start..<min(start + width, encoded.count)]))
                }
            }
        }
        forms.append(Hex.encode(value, digits: Hex.lower))
        forms.append(Hex.encode(value, digits: Hex.upper))
        // RFC 3986 unreserved characters kept, the rest as %XX (`curl --data-urlencode`,
        // `jq @uri`); `+` for a space (HTML forms, Python `quote_plus`); `/` kept (Python
        // `quote`); `!'()*` kept (JavaScript `encodeURIComponent`).
        forms.append(PercentEncoding.encode(value))
        forms.append(PercentEncoding.encode(value, spaceAsPlus: true))
        forms.append(PercentEncoding.encode(value, keeping: Array("/".utf8)))
        forms.append(PercentEncoding.encode(value, keeping: Array("!'()*".utf8)))
        return forms
    }
}

// The encoders the forms are made with.
extension SecretMasker {
    fileprivate enum Base64 {
        static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        static let url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

        /// Padded with `=`.
        static func encode(_ bytes: [UInt8], alphabet: [UInt8]) -> [UInt8] {
            var output: [UInt8] = []
            output.reserveCapacity((bytes.count + 2) / 3 * 4)
            var index = 0
            while index < bytes.count {
                let group = bytes[index..<min(index + 3, bytes.count)]
                var bits = 0
                for (position, byte) in group.enumerated() { bits |= Int(byte) << (16 - 8 * position) }
                for character in 0..<4 {
                    output.append(character <= group.count ? alphabet[(bits >> (18 - 6 * character)) & 63] : UInt8(ascii: "="))
                }
                index += 3
            }
            return output
        }

        /// The characters of the encoding of a longer input, with `bytes` at `offset` (0, 1 or 2)
        /// of a group of three, that come from the bits of `bytes` alone: character `j` holds bits
        /// `6j ..< 6j + 6`, which lie inside `bytes` when `6j >= 8 * offset` and
        /// `6j + 6 <= 8 * (offset + count)`.
        static func stableCore(of bytes: [UInt8], atOffset offset: Int, alphabet: [UInt8]) -> [UInt8] {
            let encoded = encode([UInt8](repeating: 0, count: offset) + bytes, alphabet: alphabet)
            let first = (8 * offset + 5) / 6
            let end = 8 * (offset + bytes.count) / 6
            return first < end ? Array(encoded[first..<end]) : []
        }
    }

    fileprivate enum Hex {
        static let lower = Array("0123456789abcdef".utf8)
        static let upper = Array("0123456789ABCDEF".utf8)

        static func encode(_ bytes: [UInt8], digits: [UInt8]) -> [UInt8] {
            bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }
        }
    }

    fileprivate enum PercentEncoding {
        static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

        static func encode(_ bytes: [UInt8], keeping extra: [UInt8] = [], spaceAsPlus: Bool = false) -> [UInt8] {
            var output: [UInt8] = []
            for byte in bytes {
                if unreserved.contains(byte) || extra.contains(byte) {
                    output.append(byte)
                } else if spaceAsPlus, byte == UInt8(ascii: " ") {
                    output.append(UInt8(ascii: "+"))
                } else {
                    output += [UInt8(ascii: "%"), Hex.upper[Int(byte >> 4)], Hex.upper[Int(byte & 15)]]
                }
            }
            return output
        }
    }
}

// MARK: - Finding the forms

/// The forms to mask and the tables that find them, built once per masker.
///
/// The scan is a multi-pattern Horspool (Wu–Manber): a window as long as the shortest form
/// slides over the output, and the two bytes ending it say how far it can move without
/// passing a place where a form could start. Ordinary output moves it by nearly a window at a
/// time, so the cost per byte falls as the forms get longer instead of growing with their
/// number. Only where the two bytes could end the start of a form are the forms beginning
/// with that byte compared, longest first.
///
/// Immutable after `init`, so copies of a masker share it across tasks safely.
private final class PatternSet: @unchecked Sendable {
    /// Every form's bytes one after another.
    private let storage: UnsafeMutablePointer<UInt8>
    private let offsets: UnsafeMutablePointer<Int>
    private let lengths: UnsafeMutablePointer<Int>
    /// Ids of the forms starting with byte `b`, longest first:
    /// `byFirstByte[firstByteStart[b] ..< firstByteStart[b + 1]]`.
    private let firstByteStart: UnsafeMutablePointer<Int32>
    private let byFirstByte: UnsafeMutablePointer<Int32>
    /// By the two bytes ending the window (`first << 8 | second`): how far it may move.
    private let shift: UnsafeMutablePointer<UInt8>
    /// Bytes every form has, at most 255 so that a shift fits a byte.
    private let window: Int
    let count: Int

    init(_ forms: [[UInt8]]) {
        count = forms.count
        window = min(255, forms.map(\.count).min()!)
        let total = forms.reduce(0) { $0 + $1.count }
        storage = .allocate(capacity: total)
        offsets = .allocate(capacity: count)
        lengths = .allocate(capacity: count)
        var offset = 0
        for (id, form) in forms.enumerated() {
            (storage + offset).initialize(from: form, count: form.count)
            offsets[id] = offset
            lengths[id] = form.count
            offset += form.count
        }

        // `forms` is longest first, so each byte's list is too.
        let ids = forms.indices.sorted { (forms[$0][0], -forms[$0].count) < (forms[$1][0], -forms[$1].count) }
        byFirstByte = .allocate(capacity: count)
        firstByteStart = .allocate(capacity: 257)
        var next = 0
        for byte in 0...256 {
            firstByteStart[byte] = Int32(next)
            while next < count, Int(forms[ids[next]][0]) == byte {
                byFirstByte[next] = Int32(ids[next])
                next += 1
            }
        }

        // A pair of bytes ending at position j of a form's first `window` bytes lets the window
        // move by `window - 1 - j`; a pair found in no form lets it move `window - 1`.
        shift = .allocate(capacity: 1 << 16)
        shift.initialize(repeating: UInt8(window - 1), count: 1 << 16)
        for form in forms {
            for position in 1..<window {
                let pair = Int(form[position - 1]) << 8 | Int(form[position])
                shift[pair] = min(shift[pair], UInt8(window - 1 - position))
            }
        }
    }

    deinit {
        storage.deallocate()
        offsets.deallocate()
        lengths.deallocate()
        firstByteStart.deallocate()
        byFirstByte.deallocate()
        shift.deallocate()
    }

    /// `input` with every form masked, and (unless `final`) the tail that could still grow
    /// into a form, held back. Without a mask the output is `input` or a slice of it.
    func masking(_ input: Data, final: Bool) -> (output: Data, held: Data) {
        let (matches, heldFrom) = input.withUnsafeBytes { raw in
            scan(raw.bindMemory(to: UInt8.self), final: final)
        }
        let base = input.startIndex
        let held = heldFrom < input.count ? Data(input[(base + heldFrom)...]) : Data()
        guard !matches.isEmpty else {
            return (heldFrom == input.count ? input : input.prefix(heldFrom), held)
        }
        let maskedBytes = matches.reduce(0) { $0 + $1.count }
        var output = Data(capacity: heldFrom - maskedBytes + matches.count * SecretMasker.mask.count)
        var copied = 0
        for match in matches {
            output.append(input[(base + copied)..<(base + match.lowerBound)])
            output.append(contentsOf: SecretMasker.mask)
            copied = match.upperBound
        }
        output.append(input[(base + copied)..<(base + heldFrom)])
        return (output, held)
    }

    /// The ranges to mask in `bytes`, leftmost first with the longest form at each place, and
    /// where the held tail starts (`bytes.count` when nothing is held).
    private func scan(_ bytes: UnsafeBufferPointer<UInt8>, final: Bool) -> (matches: [Range<Int>], heldFrom: Int) {
        guard let base = bytes.baseAddress else { return ([], 0) }
        let length = bytes.count
        var matches: [Range<Int>] = []
        // The last byte of the window that starts at `end - window + 1`.
        var end = window - 1
        while end < length {
            let skip = Int(shift[Int(base[end - 1]) &<< 8 | Int(base[end])])
            if skip != 0 {
                end &+= skip
                continue
            }
            let start = end - window + 1
            switch verdict(at: base + start, available: length - start, final: final) {
            case .match(let count):
                matches.append(start..<start + count)
                end = start + count + window - 1
            case .hold:
                return (matches, start)
            case .none:
                end += 1
            }
        }
        guard !final else { return (matches, length) }
        // The last bytes, fewer than a window: held from the first that begins some form.
        for start in (end - window + 1)..<max(end - window + 1, length) {
            if case .hold = verdict(at: base + start, available: length - start, final: false) {
                return (matches, start)
            }
        }
        return (matches, length)
    }

    private enum Verdict {
        /// The longest form that starts here, `count` bytes long.
        case match(Int)
        /// The bytes left begin a longer form than any that matches: wait for more.
        case hold
        case none
    }

    @inline(__always)
    private func verdict(at position: UnsafePointer<UInt8>, available: Int, final: Bool) -> Verdict {
        let first = Int(position[0])
        for index in Int(firstByteStart[first])..<Int(firstByteStart[first + 1]) {
            let id = Int(byFirstByte[index])
            let count = lengths[id]
            if count > available {
                if !final, memcmp(storage + offsets[id], position, available) == 0 { return .hold }
            } else if memcmp(storage + offsets[id], position, count) == 0 {
                return .match(count)
            }
        }
        return .none
    }
}
