import Foundation
import Testing

@testable import RapidFlowCore

@Suite("Secret masking")
struct SecretMaskerTests {
    /// Feeds `text` in pieces cut at `cuts` and returns what the masker released.
    static func masked(_ text: String, secrets: [String], cuts: [Int]) -> String {
        masked(text, masker: SecretMasker(secrets: secrets), cuts: cuts)
    }

    /// The same with a masker made once (a copy of it starts fresh): the tests that cut at
    /// every byte would otherwise build its tables thousands of times, holding a concurrency
    /// thread for seconds that the suite's services need.
    static func masked(_ text: String, masker fresh: SecretMasker, cuts: [Int]) -> String {
        var masker = fresh
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
        let masker = SecretMasker(secrets: secrets)
        for cut in 0...text.utf8.count {
            #expect(Self.masked(text, masker: masker, cuts: [cut]) == expected, "cut at \(cut)")
        }
        // Every two-cut split of the text, too.
        for first in stride(from: 0, through: text.utf8.count, by: 3) {
            for second in stride(from: first, through: text.utf8.count, by: 2) {
                #expect(Self.masked(text, masker: masker, cuts: [first, second]) == expected)
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

    // MARK: - Encoded forms

    /// The forms a step commonly prints a secret in, made here with Foundation's encoders (not
    /// the masker's own), named for the failure messages.
    static func printedForms(of secret: String) -> [(name: String, text: String)] {
        let base64 = Data(secret.utf8).base64EncodedString()
        let urlBase64 = base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let percent = secret.addingPercentEncoding(withAllowedCharacters: unreserved)!
        let hex = Array(secret.utf8).map { String(format: "%02x", $0) }.joined()
        return [
            ("literal", secret),
            ("base64", base64),
            ("base64 without padding", base64.replacingOccurrences(of: "=", with: "")),
            ("base64url", urlBase64),
            ("base64url without padding", urlBase64.replacingOccurrences(of: "=", with: "")),
            ("hex", hex),
            ("HEX", hex.uppercased()),
            ("percent-encoded (curl --data-urlencode, jq @uri)", percent),
            ("percent-encoded with + for space (quote_plus)", percent.replacingOccurrences(of: "%20", with: "+")),
            ("percent-encoded keeping / (Python quote)", secret.addingPercentEncoding(withAllowedCharacters: unreserved.union(CharacterSet(charactersIn: "/")))!),
        ]
    }

    static let awkwardSecrets = [
        // Base64 with `+`, `/` and one `=`; a space, `/`, `~` and a two-byte character to URL-encode.
        "hunter2 ~/?\u{FC}>>?>",
        // Base64 with `==`.
        "p@ss w/rd~\u{FC}?>>>",
    ]

    @Test(arguments: awkwardSecrets)
    func everyFormIsMaskedWholeAndSplitAtEveryByte(secret: String) throws {
        let forms = Self.printedForms(of: secret)
        // The forms really differ where they should, or this test checks less than it says.
        #expect(Set(forms.map(\.text)).count == forms.count)
        let masker = SecretMasker(secrets: [secret])
        for form in forms {
            let text = "before " + form.text + " after\n"
            for cut in 0...text.utf8.count {
                let output = Self.masked(text, masker: masker, cuts: [cut])
                #expect(output == "before ******** after\n", "\(form.name) cut at \(cut): \(output)")
                for other in forms {
                    #expect(!output.contains(other.text), "\(form.name) cut at \(cut) shows \(other.name)")
                }
            }
        }
    }

    @Test(arguments: [0, 1, 2])
    func aSecretInsideALongerBase64RunIsMaskedAtEveryAlignment(alignment: Int) {
        let secret = "ghp_R4nd0mT0kenValue42"
        // The secret inside a JSON document that is base64-encoded as a whole: it starts at byte
        // `alignment` of a group of three.
        let before = "{\"name\": \"deploy\", \"key\": \"" + String(repeating: "x", count: alignment)
        let document = Array((before + secret + "\", \"more\": \"after the secret\"}").utf8)
        let offset = before.utf8.count
        #expect(offset % 3 == alignment)
        // Character j of the encoding holds bits 6j ..< 6j + 6: those inside the secret's bytes
        // come from the secret alone, and are the ones that must not be shown.
        let first = (8 * offset + 5) / 6
        let end = 8 * (offset + secret.utf8.count) / 6
        for alphabet in ["standard", "url"] {
            var encoded = Data(document).base64EncodedString()
            if alphabet == "url" {
                encoded = encoded.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            }
            let characters = Array(encoded)
            let core = String(characters[first..<end])
            let expected = "payload: " + String(characters[..<first]) + "********" + String(characters[end...]) + "\n"
            let text = "payload: " + encoded + "\n"
            let masker = SecretMasker(secrets: [secret])
            for cut in 0...text.utf8.count {
                let output = Self.masked(text, masker: masker, cuts: [cut])
                #expect(output == expected, "\(alphabet) alignment \(alignment) cut at \(cut)")
                #expect(!output.contains(core))
            }
        }
    }

    @Test func eachLineOfAWrappedBase64OfALongSecretIsMasked() {
        // `base64` wraps at 76 columns: `cat key | base64` prints the secret over two lines.
        let secret = String(repeating: "l0ng-s3cret-", count: 9)
        let wrapped = Data((secret + "\n").utf8).base64EncodedString(options: .lineLength76Characters)
            .replacingOccurrences(of: "\r\n", with: "\n")
        let lines = wrapped.split(separator: "\n")
        #expect(lines.count == 2)
        let output = Self.masked(wrapped + "\n", secrets: [secret], cuts: [70, 80])
        for (line, shown) in zip(lines, output.split(separator: "\n")) {
            // Only the last characters, which also hold bits of the newline after it and padding, stay.
            #expect(shown.hasPrefix("********") && shown.count <= 8 + 4, "\(line) shown as \(shown)")
        }
    }

    @Test func encodingsOfAMultilineSecretAndOfItsLinesAreMasked() {
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
        let line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
        let printed = [
            Data(key.utf8).base64EncodedString(),
            Data((line + "\n").utf8).base64EncodedString(),  // head -2 | tail -1 | base64
            Array(line.utf8).map { String(format: "%02X", $0) }.joined(),
        ]
        for form in printed {
            let output = Self.masked("> " + form + "\n", secrets: [key], cuts: [5])
            #expect(output.hasPrefix("> ********") && output.count <= "> ********\n".count + 4, "\(form) shown as \(output)")
        }
    }

    /// The plain way: at every byte, every form, longest first.
    static func maskedByTryingEveryForm(_ text: String, secrets: [String]) -> String {
        let forms = SecretMasker.forms(of: secrets)
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        outer: while index < bytes.count {
            for form in forms where form.count <= bytes.count - index && bytes[index..<index + form.count].elementsEqual(form) {
                output += SecretMasker.mask
                index += form.count
                continue outer
            }
            output.append(bytes[index])
            index += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    @Test func theScanFindsWhatTryingEveryFormAtEveryByteFinds() {
        // Short secrets over a small alphabet, so that forms overlap, share first bytes and
        // begin where others end; printed as themselves and encoded, cut anywhere.
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab+/=%2Fy\n ")
        for _ in 0..<300 {
            let secrets = (0..<Int.random(in: 1...4, using: &generator)).map { _ in
                String((0..<Int.random(in: 4...7, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            }
            var pieces: [String] = []
            for _ in 0..<12 {
                let secret = secrets.randomElement(using: &generator)!
                switch Int.random(in: 0..<5, using: &generator) {
                case 0: pieces.append(secret)
                case 1: pieces.append(Data(secret.utf8).base64EncodedString())
                case 2: pieces.append(Array(secret.utf8).map { String(format: "%02x", $0) }.joined())
                default: pieces.append(String((0..<Int.random(in: 1...4, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }))
                }
            }
            let text = pieces.joined()
            let expected = Self.maskedByTryingEveryForm(text, secrets: secrets)
            #expect(SecretMasker(secrets: secrets).masking(text) == expected, "secrets \(secrets) text \(text.debugDescription)")
            let cuts = (0..<3).map { _ in Int.random(in: 0...text.utf8.count, using: &generator) }
            #expect(Self.masked(text, secrets: secrets, cuts: cuts) == expected, "secrets \(secrets) text \(text.debugDescription) cuts \(cuts)")
        }
    }

    // MARK: - What must not change

    @Test func ordinaryOutputIsNotMasked() {
        let secrets = Self.awkwardSecrets + ["ghp_R4nd0mT0kenValue42", "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"]
        let ordinary = """
            Compiling RapidFlowCore SecretMasker.swift
            Build complete! (12.34s) hunter2 is not the secret, nor is p@ss or ghp_ or KEY-----
            GET https://example.com/search?q=hunter%202&page=2 200 OK
            sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
            \(Data("an unrelated document, encoded: {\"a\": 1}".utf8).base64EncodedString())
            \(Array("other bytes".utf8).map { String(format: "%02x", $0) }.joined())
            ✓ 132 tests passed, 0 failed — ünïcödé and emoji 🎉 pass through

            """
        var masker = SecretMasker(secrets: secrets)
        #expect(masker.masking(ordinary) == ordinary)
        for cut in stride(from: 0, through: ordinary.utf8.count, by: 7) {
            #expect(Self.masked(ordinary, secrets: secrets, cuts: [cut]) == ordinary, "cut at \(cut)")
        }
        // Line by line, each line comes straight back: nothing is held, nothing is late.
        for line in ordinary.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let chunk = Data((line + "\n").utf8)
            #expect(masker.feed(chunk) == chunk)
        }
        #expect(masker.flush().isEmpty)
    }

    @Test func withoutSecretsTheMaskerIsEmptyAndPassesOutputThrough() {
        var masker = SecretMasker(secrets: ["", "abc", "\n"])
        #expect(masker.isEmpty)
        let chunk = Data("output with abc in it\n".utf8)
        #expect(masker.feed(chunk) == chunk)
        #expect(masker.flush().isEmpty)
    }

    @Test func onlyATailThatCouldStillBecomeASecretIsHeld() {
        var masker = SecretMasker(secrets: ["ghp_R4nd0mT0kenValue42"])
        #expect(masker.feed(Data("line one\nstarting ghp_R4n".utf8)) == Data("line one\nstarting ".utf8))
        #expect(masker.feed(Data("d0mT0kenValue42 done\n".utf8)) == Data("******** done\n".utf8))
        #expect(masker.feed(Data("ghp_ but not the token\n".utf8)) == Data("ghp_ but not the token\n".utf8))
        #expect(masker.feed(Data("ends with ghp".utf8)) == Data("ends with ".utf8))
        #expect(masker.flush() == Data("ghp".utf8))
        // A chunk that is a slice of a larger buffer (its indices do not start at 0).
        let buffer = Data("xxxx-ghp_R4nd0mT0kenValue42-and-ghp_R4nd0m".utf8)
        #expect(masker.feed(buffer[4...]) == Data("-********-and-".utf8))
        #expect(masker.flush() == Data("ghp_R4nd0m".utf8))
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
