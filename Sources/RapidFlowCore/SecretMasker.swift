import Foundation

/// Replaces every secret value in a stream of output chunks with `********`, also when a
/// secret is split across chunks.
///
/// Only the longest tail of what was seen that could still grow into a secret is held
/// back, so output without secrets passes through with no delay.
public struct SecretMasker: Sendable {
    public static let mask = Array("********".utf8)
    private let secrets: [[UInt8]]
    private var pending: [UInt8] = []

    /// Secrets shorter than 4 bytes are ignored: masking them would garble ordinary output.
    public init(secrets: [String]) {
        self.secrets = Set(secrets.filter { $0.utf8.count >= 4 }).map { Array($0.utf8) }.sorted { $0.count > $1.count }
    }

    public var isEmpty: Bool { secrets.isEmpty }

    /// Masks `chunk` and returns what can be released now.
    public mutating func feed(_ chunk: Data) -> Data {
        guard !secrets.isEmpty else { return chunk }
        var buffer = pending + Array(chunk)
        buffer = replaceAll(in: buffer)
        let hold = heldBack(buffer)
        pending = Array(buffer.suffix(hold))
        return Data(buffer.prefix(buffer.count - hold))
    }

    /// Releases whatever was held back, at the end of the output.
    public mutating func flush() -> Data {
        defer { pending = [] }
        return Data(pending)
    }

    private func replaceAll(in bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        outer: while index < bytes.count {
            for secret in secrets where bytes[index] == secret[0] && index + secret.count <= bytes.count {
                if bytes[index..<index + secret.count].elementsEqual(secret) {
                    result += Self.mask
                    index += secret.count
                    continue outer
                }
            }
            result.append(bytes[index])
            index += 1
        }
        return result
    }

    /// The length of the longest suffix of `bytes` that is a proper prefix of some secret.
    private func heldBack(_ bytes: [UInt8]) -> Int {
        let longest = min((secrets.first?.count ?? 1) - 1, bytes.count)
        guard longest > 0 else { return 0 }
        for length in stride(from: longest, through: 1, by: -1) {
            let tail = bytes.suffix(length)
            if secrets.contains(where: { $0.count > length && $0.prefix(length).elementsEqual(tail) }) { return length }
        }
        return 0
    }
}
