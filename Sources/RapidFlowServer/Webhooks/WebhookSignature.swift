import Crypto
import Foundation
import RapidFlowCore

/// The signature schemes of webhook deliveries, both ways: the forges' (GitHub's
/// `X-Hub-Signature-256`, Gitea's `X-Gitea-Signature`, GitLab's `X-Gitlab-Token`) and the
/// Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`), which
/// `POST /hooks/git` checks and every outgoing delivery carries. Every comparison takes the
/// same time whatever the bytes.
enum WebhookSignature {
    /// How far a Standard Webhooks timestamp may be from now: a delivery captured and sent
    /// again later is refused.
    static let tolerance: TimeInterval = 5 * 60

    static func hmacSHA256(key: Data, _ message: some DataProtocol) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Compares in time that depends on the lengths only.
    static func equal(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

    /// GitHub: `sha256=<hex HMAC of the body>`.
    static func verifyGitHub(header: String?, body: Data, secret: String) -> Bool {
        guard let header, header.hasPrefix("sha256=") else { return false }
        let expected = "sha256=" + hex(hmacSHA256(key: Data(secret.utf8), body))
        return equal(Array(header.utf8), Array(expected.utf8))
    }

    /// Gitea and Forgejo: `<hex HMAC of the body>`.
    static func verifyGitea(header: String?, body: Data, secret: String) -> Bool {
        guard let header, !header.isEmpty else { return false }
        let expected = hex(hmacSHA256(key: Data(secret.utf8), body))
        return equal(Array(header.lowercased().utf8), Array(expected.utf8))
    }

    /// GitLab: the secret itself in `X-Gitlab-Token`.
    static func verifyGitLab(header: String?, secret: String) -> Bool {
        guard let header, !header.isEmpty else { return false }
        // Hashed first, so the comparison's time does not even depend on the lengths.
        return equal(Array(SHA256.hash(data: Data(header.utf8))), Array(SHA256.hash(data: Data(secret.utf8))))
    }

    // MARK: - Standard Webhooks

    /// A new signing secret: `whsec_` and 32 random bytes in base64.
    static func newSecret() -> String {
        "whsec_" + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    }

    /// The key bytes of a `whsec_…` secret; nil when it is not one.
    static func standardKey(_ secret: String) -> Data? {
        guard secret.hasPrefix("whsec_"), let key = Data(base64Encoded: String(secret.dropFirst(6))), key.count >= 16 else { return nil }
        return key
    }

    /// `v1,<base64 HMAC of "id.timestamp.body">`.
    static func standardSignature(id: String, timestamp: Int, body: Data, key: Data) -> String {
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(body)
        return "v1," + hmacSHA256(key: key, message).base64EncodedString()
    }

    /// Checks the three headers; the signature header may list several space-separated
    /// signatures (a secret being rotated), one matching is enough.
    static func verifyStandard(id: String?, timestamp: String?, signature: String?, body: Data, key: Data, now: Date = Date()) -> Bool {
        guard let id, !id.isEmpty, let timestamp, let seconds = Int(timestamp), let signature else { return false }
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { return false }
        let expected = Array(standardSignature(id: id, timestamp: seconds, body: body, key: key).utf8)
        var matched = false
        for candidate in signature.split(separator: " ") where equal(Array(candidate.utf8), expected) { matched = true }
        return matched
    }
}
