import Foundation
import Yams

extension PipelineConfig {
    /// The values of the config's secret-looking env keys (`*_TOKEN`, `*_PASSWORD`, ...).
    public var secretValues: [String] {
        env.filter { EnvironmentValidation.looksSecret($0.key) }.map(\.value)
    }

    /// `yaml` as it may be shown: rendered again from its parsed form with every secret value
    /// (the config's own secret-looking env values and `extraSecrets`, each line of a multiline
    /// one too) replaced by `********` wherever it occurs.
    ///
    /// Masking the parsed values rather than the text catches every way YAML can write a value:
    /// quoted with escapes, as a block or folded. A config without secrets is returned as written.
    public static func maskedText(_ yaml: String, extraSecrets: [String] = []) -> String {
        // Parsing with room to spare: a stored config was valid under the limits it was stored with.
        let roomy = Limits(maxSteps: .max, maxScriptBytes: .max, maxEnvironmentEntries: .max)
        let parsed = try? PipelineConfig(yaml: yaml, limits: roomy)
        let secretKeys = parsed?.env.contains { EnvironmentValidation.looksSecret($0.key) } ?? false
        let masker = SecretMasker(secrets: (parsed?.secretValues ?? []) + extraSecrets)
        guard !masker.isEmpty || secretKeys else { return yaml }
        guard let root = try? Yams.compose(yaml: yaml) else { return masker.masking(yaml) }
        let rendered = try? Yams.serialize(node: mask(root, masker: masker, depth: 0, inEnv: false), allowUnicode: true)
        return rendered ?? String(decoding: SecretMasker.mask, as: UTF8.self)
    }

    /// Masks every scalar; under the top-level `env`, a secret-looking key's value is masked
    /// whole whatever its length.
    private static func mask(_ node: Node, masker: SecretMasker, depth: Int, inEnv: Bool) -> Node {
        switch node {
        case .scalar(var scalar):
            scalar.string = masker.masking(scalar.string)
            scalar.style = scalar.string.contains("\n") ? .literal : .any
            return .scalar(scalar)
        case .mapping(let mapping):
            let pairs = mapping.map { key, value -> (Node, Node) in
                let name = key.string ?? ""
                if inEnv, EnvironmentValidation.looksSecret(name), case .scalar(var scalar) = value {
                    scalar.string = String(decoding: SecretMasker.mask, as: UTF8.self)
                    scalar.style = .any
                    return (key, .scalar(scalar))
                }
                let isEnv = depth == 0 && name == "env"
                return (mask(key, masker: masker, depth: depth + 1, inEnv: false), mask(value, masker: masker, depth: depth + 1, inEnv: isEnv))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map { mask($0, masker: masker, depth: depth + 1, inEnv: false) }, sequence.tag, sequence.style))
        case .alias:
            return node
        }
    }
}
