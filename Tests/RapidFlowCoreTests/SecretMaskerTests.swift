import Foundation
import Testing

@testable import RapidFlowCore

@Suite("Secret masking")
struct SecretMaskerTests {
    /// Feeds `text` in pieces cut at `cuts` and returns what the masker released.
    static func masked(_ text: String, secrets: [String], cuts: [Int]) -> String {
        var masker = SecretMasker(secrets: secrets)
        let bytes = Array(text.utf8)
        var output = Data()
        var start = 0
        for cut in (cuts.filter { $0 > 0 && $0 < bytes.count }.sorted() + [bytes.count]) where cut >= start {
            output.append(masker.feed(Data(bytes[start..<cut])))
            start = cut
        }
        output.append(masker.flush())
        return String(decoding: output, as: UTF8.self)
    }

    @Test func overlappingSecretsAreMaskedWholeWhereverTheChunksAreCut() {
        let secrets = ["token", "token123"]
        let text = "a token123 b token c token12 d tokentoken123"
        let expected = "a ******** b ******** c ********12 d ****************"
        for cut in 0...text.utf8.count {
            #expect(Self.masked(text, secrets: secrets, cuts: [cut]) == expected, "cut at \(cut)")
        }
        // Every two-cut split of the text, too.
        for first in stride(from: 0, through: text.utf8.count, by: 3) {
            for second in stride(from: first, through: text.utf8.count, by: 2) {
                #expect(Self.masked(text, secrets: secrets, cuts: [first, second]) == expected)
            }
        }
    }

    @Test func eachLineOfAMultilineSecretIsASecret() {
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n  bm90LWEtcmVhbC1rZXktYnV0LWxvbmc=  \n-----END KEY-----"
        let printed = "first line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nsecond: bm90LWEtcmVhbC1rZXktYnV0LWxvbmc=\nwhole:\n\(key)\n"
        let masked = Self.masked(printed, secrets: [key], cuts: [7, 40, 90])
        #expect(!masked.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"))
        #expect(!masked.contains("bm90LWEtcmVhbC1rZXktYnV0LWxvbmc="))
        #expect(masked.hasPrefix("first line: ********\nsecond: ********\nwhole:\n********\n"), "\(masked)")
    }

    @Test func randomSecretsInRandomOutputNeverSurvive() {
        // Each failure prints its case (secrets, text, cuts), so it can be run again by hand.
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abtok12\n ")
        for _ in 0..<300 {
            let secrets = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                String((0..<Int.random(in: 4...9, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            }.filter { !$0.contains("\n") && !$0.contains(" ") }
            guard !secrets.isEmpty else { continue }
            var text = ""
            for _ in 0..<20 {
                text += Bool.random(using: &generator) ? secrets.randomElement(using: &generator)! : String(alphabet.randomElement(using: &generator)!)
            }
            let cuts = (0..<3).map { _ in Int.random(in: 0...text.utf8.count, using: &generator) }
            let output = Self.masked(text, secrets: secrets, cuts: cuts)
            // Masking the whole text at once is the reference; chunking must not change it.
            #expect(output == SecretMasker(secrets: secrets).masking(text), "secrets \(secrets) text \(text.debugDescription) cuts \(cuts)")
            for secret in secrets {
                #expect(!output.contains(secret), "\(secret) in \(output.debugDescription)")
            }
        }
    }

    @Test func configsShowNoSecretInAnyYAMLForm() throws {
        let yaml = """
            env:
              QUOTED_TOKEN: 'it''s-secret-1'
              BLOCK_SECRET: |
                block-secret-line-one
                block-secret-line-two
              FOLDED_PASSWORD: >
                folded-secret
                continued
              ESCAPED_KEY: "caf\\u00e9-escaped-secret"
              SHORT_TOKEN: "abc"
              PLAIN: visible-value
            steps:
              - echo it\\'s-secret-1 and caf\u{e9}-escaped-secret
            """
        let shown = PipelineConfig.maskedText(yaml)
        for secret in ["it's-secret-1", "it''s-secret-1", "block-secret-line-one", "block-secret-line-two", "folded-secret", "café-escaped-secret", "caf\\u00e9", "abc"] {
            #expect(!shown.contains(secret), "\(secret) in \(shown)")
        }
        #expect(shown.contains("visible-value"))
        // Still a valid config with the same keys and steps.
        let reparsed = try PipelineConfig(yaml: shown)
        #expect(reparsed.env.map(\.key) == ["QUOTED_TOKEN", "BLOCK_SECRET", "FOLDED_PASSWORD", "ESCAPED_KEY", "SHORT_TOKEN", "PLAIN"])
        #expect(reparsed.env.first { $0.key == "QUOTED_TOKEN" }?.value == "********")
        #expect(reparsed.steps.count == 1)
        // A config without secrets is shown as written, comments and all.
        let plain = "# a comment\nsteps:\n  - echo hi\n"
        #expect(PipelineConfig.maskedText(plain) == plain)
    }
}
