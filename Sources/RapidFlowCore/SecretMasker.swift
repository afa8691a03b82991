import Foundation

/// Replaces every secret value in a stream of output chunks with `********`, also when a
/// secret is split across chunks.
///
/// Secrets are matched longest first, and a match is decided only once it can no longer grow
/// into a longer secret (`token` is not masked while `token123` may still follow). Only the
/// tail of what was seen that could still grow into a secret is held back, so output without
/// secrets passes through with no delay. Each line of a multiline secret is a secret too:
/// line tools (`head -1`, `grep`) print one line of it on its own.
public struct SecretMasker: Sendable {
    public static let mask = Array("********".utf8)
    /// Secrets (and lines of secrets) shorter than this are ignored: masking them would
    /// garble ordinary output.
    public static let minimumLength = 4
    private let secrets: [[UInt8]]
    private let longest: Int
    private var pending: [UInt8] = []

    public init(secrets: [String]) {
        var values = Set<String>()
        for secret in secrets {
            values.insert(secret)
            if secret.contains(where: \.isNewline) {
                for line in secret.split(whereSeparator: \.isNewline) {
                    values.insert(line.trimmingCharacters(in: .whitespaces))
                }
            }
        }
        self.secrets = values.filter { $0.utf8.count >= Self.minimumLength }.map { Array($0.utf8) }.sorted { $0.count > $1.count }
        self.longest = self.secrets.first?.count ?? 0
    }

    public var isEmpty: Bool { secrets.isEmpty }

    /// Masks `chunk` and returns what can be released now.
    public mutating func feed(_ chunk: Data) -> Data {
        guard !secrets.isEmpty else { return chunk }
        let (masked, held) = Self.replace(in: pending + Array(chunk), secrets: secrets, longest: longest, final: false)
        pending = held
        return Data(masked)
    }

    /// Releases whatever was held back, masked, at the end of the output.
    public mutating func flush() -> Data {
        defer { pending = [] }
        guard !pending.isEmpty else { return Data() }
        return Data(Self.replace(in: pending, secrets: secrets, longest: longest, final: true).masked)
    }

    /// Masks a whole text at once.
    public func masking(_ text: String) -> String {
        guard !secrets.isEmpty else { return text }
        return String(decoding: Self.replace(in: Array(text.utf8), secrets: secrets, longest: longest, final: true).masked, as: UTF8.self)
    }

    /// Replaces secrets in `bytes`; unless `final`, stops where what is left could still
    /// become (a longer) secret and returns that rest to be held.
    private static func replace(in bytes: [UInt8], secrets: [[UInt8]], longest: Int, final: Bool) -> (masked: [UInt8], held: [UInt8]) {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        outer: while index < bytes.count {
            let remaining = bytes.count - index
            if !final, remaining < longest,
                secrets.contains(where: { $0.count > remaining && $0.prefix(remaining).elementsEqual(bytes[index...]) })
            {
                return (result, Array(bytes[index...]))
            }
            for secret in secrets where bytes[index] == secret[0] && secret.count <= remaining {
                if bytes[index..<index + secret.count].elementsEqual(secret) {
                    result += mask
                    index += secret.count
                    continue outer
                }
            }
            result.append(bytes[index])
            index += 1
        }
        return (result, [])
    }
}
