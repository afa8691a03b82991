import Foundation
import Yams

/// A pipeline config, parsed from its YAML and checked key by key.
///
/// Parsing walks the YAML node tree instead of decoding into a struct so that every
/// refusal names the exact key at fault (unknown keys, wrong types, a non-string env value).
public struct PipelineConfig: Sendable, Equatable {
    public struct StepConfig: Sendable, Equatable {
        public var type: StepType
        public var name: String?
        public var content: String
        public var phase: Phase
    }

    public var name: String?
    public var language: String?
    public var version: String?
    public var image: String?
    public var repo: String?
    public var branch: String?
    public var folder: String?
    public var exposePorts: Bool
    public var env: [(key: String, value: String)]
    /// Variables whose values are stored secrets (`env: {KEY: {from_secret: NAME}}` and the
    /// names listed under `secrets:`), resolved when a job runs: the config never holds them.
    public var secretReferences: [SecretReference]
    public var steps: [StepConfig]
    public var killTimeoutSeconds: Double?
    public var timeoutSeconds: Double?
    /// How soon its jobs are taken (`high`, `normal`, `low`); nil: normal.
    public var priority: JobPriority?
    /// At most one job of the group runs at a time (`concurrency_group`, `on_conflict`).
    public var concurrency: ConcurrencyGroup?
    /// Which forge events start its jobs (`on:`); nil: only API triggers do.
    public var on: TriggerFilter?
    /// What its jobs keep for the next ones (`cache:`).
    public var caches: [CacheSpec] = []
    /// What its jobs keep for download (`artifacts:`).
    public var artifacts: ArtifactSpec?

    public static let knownKeys: Set<String> = [
        "name", "language", "version", "image", "repo", "branch", "folder", "expose_ports", "env", "secrets", "steps",
        "kill_timeout_seconds", "timeout_seconds", "priority", "concurrency_group", "on_conflict", "on", "cache", "artifacts",
    ]
    public static let knownStepKeys: Set<String> = ["type", "content", "phase", "name"]

    public static func == (lhs: PipelineConfig, rhs: PipelineConfig) -> Bool {
        lhs.name == rhs.name && lhs.language == rhs.language && lhs.version == rhs.version && lhs.image == rhs.image
            && lhs.repo == rhs.repo && lhs.branch == rhs.branch && lhs.folder == rhs.folder
            && lhs.exposePorts == rhs.exposePorts && lhs.steps == rhs.steps
            && lhs.env.map(\.key) == rhs.env.map(\.key) && lhs.env.map(\.value) == rhs.env.map(\.value)
            && lhs.secretReferences == rhs.secretReferences
            && lhs.killTimeoutSeconds == rhs.killTimeoutSeconds && lhs.timeoutSeconds == rhs.timeoutSeconds
            && lhs.priority == rhs.priority && lhs.concurrency == rhs.concurrency && lhs.on == rhs.on
            && lhs.caches == rhs.caches && lhs.artifacts == rhs.artifacts
    }

    /// Parses and validates a config; every failure is an `invalid_config` error naming the key.
    /// `repositories` says whether `repo` may be a repository on the service's own machine.
    public init(yaml: String, limits: Limits = .default, repositories: RepositoryPolicy = .remoteOnly) throws(RapidFlowError) {
        guard !yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .invalidConfig("config is empty: it must be a YAML mapping with at least a 'steps' list")
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw RapidFlowError.invalidConfig("config is empty: it must be a YAML mapping with at least a 'steps' list")
            }
            root = node
        } catch let error as RapidFlowError {
            throw error
        } catch {
            throw .invalidConfig("config is not valid YAML: \(Self.describe(error))")
        }
        guard case .mapping(let mapping) = root else {
            throw .invalidConfig("config must be a YAML mapping of keys (name, steps, env, ...)")
        }

        var name: String?, language: String?, version: String?, image: String?
        var repo: String?, branch: String?, folder: String?
        var exposePorts = false
        var env: [(key: String, value: String)] = []
        var references: [SecretReference] = [], listed: [SecretReference] = []
        var steps: [StepConfig]?
        var killTimeout: Double?, timeout: Double?
        var priority: JobPriority?
        var groupTemplate: String?, onConflict: ConcurrencyGroup.OnConflict?
        var on: TriggerFilter?
        var caches: [CacheSpec] = []
        var artifacts: ArtifactSpec?
        var seen = Set<String>()

        for (keyNode, value) in mapping {
            guard let key = Self.scalarString(keyNode) else {
                throw .invalidConfig("config keys must be strings")
            }
            guard Self.knownKeys.contains(key) else {
                throw .invalidConfig(
                    "unknown config key '\(key)'; known keys: \(Self.knownKeys.sorted().joined(separator: ", "))")
            }
            guard seen.insert(key).inserted else {
                throw .invalidConfig("config key '\(key)' appears twice")
            }
            switch key {
            case "name": name = try Self.text(value, key: key)
            case "language": language = try Self.text(value, key: key)
            case "version": version = try Self.text(value, key: key)
            case "image": image = try Self.text(value, key: key)
            case "repo": repo = try Self.text(value, key: key)
            case "branch": branch = try Self.text(value, key: key)
            case "folder": folder = try Self.text(value, key: key)
            case "expose_ports":
                guard case .scalar = value, let flag = value.bool else {
                    throw .invalidConfig("'expose_ports' must be true or false")
                }
                exposePorts = flag
            case "env": (env, references) = try Self.environment(value, limits: limits)
            case "secrets": listed = try Self.secretList(value)
            case "steps": steps = try Self.steps(value, limits: limits)
            case "kill_timeout_seconds": killTimeout = try Self.seconds(value, key: key, limits: limits)
            case "timeout_seconds": timeout = try Self.seconds(value, key: key, limits: limits)
            case "priority":
                do {
                    priority = try JobPriority.parse(try Self.text(value, key: key), field: key)
                } catch {
                    throw .invalidConfig(error.message)
                }
            case "concurrency_group":
                let template = try Self.text(value, key: key)
                do { try ConcurrencyGroup.check(template, field: key) } catch { throw .invalidConfig(error.message) }
                groupTemplate = template
            case "on_conflict":
                do {
                    onConflict = try ConcurrencyGroup.OnConflict.parse(try Self.text(value, key: key), field: key)
                } catch {
                    throw .invalidConfig(error.message)
                }
            case "on": on = try Self.triggerFilter(value)
            case "cache": caches = try Self.caches(value)
            case "artifacts": artifacts = try Self.artifacts(value)
            default: break
            }
        }
        guard let steps else {
            throw .invalidConfig("config has no 'steps': give a list of at least one bash step")
        }
        if let repo { try Self.checkRepository(repo, repositories: repositories) }
        if let folder { try Self.checkRelativePath(folder, key: "folder") }
        if let branch { try RefValidation.checkRef(branch, field: "branch") }
        if onConflict != nil, groupTemplate == nil {
            throw .invalidConfig("'on_conflict' needs a 'concurrency_group': it says what a new job does to the group's other jobs")
        }

        self.name = name
        self.language = language
        self.version = version
        self.image = image
        self.repo = repo
        self.branch = branch
        self.folder = folder
        self.exposePorts = exposePorts
        self.env = env
        // A variable given under `env` wins over the same name listed under `secrets`.
        let given = Set(env.map(\.key) + references.map(\.key))
        let allReferences = references + listed.filter { !given.contains($0.key) }
        try EnvironmentValidation.checkCount(env.count + allReferences.count, limits: limits)
        self.secretReferences = allReferences
        self.steps = steps
        self.killTimeoutSeconds = killTimeout
        self.timeoutSeconds = timeout
        self.priority = priority
        self.on = on
        self.caches = caches
        self.artifacts = artifacts
        self.concurrency = groupTemplate.map { ConcurrencyGroup(template: $0, onConflict: onConflict ?? .queue) }
    }

    // MARK: - Pieces

    /// `cache: [{key: "pip-${checksum:requirements.txt}", paths: [.venv], restore_keys: ["pip-"]}]`.
    private static func caches(_ node: Node) throws(RapidFlowError) -> [CacheSpec] {
        let usage = "'cache' must be a list of {key: ..., paths: [...], restore_keys: [...]}"
        let entries: [Node]
        switch node {
        case .sequence(let sequence): entries = Array(sequence)
        case .mapping: entries = [node]
        default: throw .invalidConfig(usage)
        }
        guard entries.count <= CacheSpec.maxPerConfig else {
            throw .invalidConfig("'cache' has \(entries.count) entries; at most \(CacheSpec.maxPerConfig) are allowed")
        }
        var result: [CacheSpec] = []
        for (index, entry) in entries.enumerated() {
            let label = "cache[\(index)]"
            guard case .mapping(let mapping) = entry else { throw .invalidConfig("\(label): \(usage)") }
            var key: String?, paths: [String]?, restoreKeys: [String] = []
            for (keyNode, value) in mapping {
                switch scalarString(keyNode) {
                case "key": key = try text(value, key: "\(label).key")
                case "paths": paths = try pathList(value, key: "\(label).paths", max: CacheSpec.maxPaths, globs: false)
                case "restore_keys": restoreKeys = try stringList(value, key: "\(label).restore_keys")
                default:
                    throw .invalidConfig("unknown key '\(scalarString(keyNode) ?? "?")' in \(label); known keys: key, paths, restore_keys")
                }
            }
            guard let key else { throw .invalidConfig("\(label) has no 'key': give one, e.g. \"deps-${checksum:requirements.txt}\"") }
            guard let paths else { throw .invalidConfig("\(label) has no 'paths': list what to keep, e.g. [.venv]") }
            for (name, template) in [("key", key)] + restoreKeys.enumerated().map { ("restore_keys[\($0.offset)]", $0.element) } {
                if let problem = CacheKeyTemplate.problem(template) { throw .invalidConfig("\(label).\(name) '\(template)' \(problem)") }
            }
            result.append(CacheSpec(key: key, paths: paths, restoreKeys: restoreKeys))
        }
        return result
    }

    /// `artifacts: {paths: ["dist/*.tar.gz"], expire_in_days: 7, when: always}`.
    private static func artifacts(_ node: Node) throws(RapidFlowError) -> ArtifactSpec {
        let usage = "'artifacts' must be a mapping: {paths: [\"dist/*.tar.gz\"], expire_in_days: 7, when: on_success}"
        guard case .mapping(let mapping) = node else { throw .invalidConfig(usage) }
        var spec = ArtifactSpec(paths: [])
        var hasPaths = false
        for (keyNode, value) in mapping {
            switch scalarString(keyNode) {
            case "paths":
                spec.paths = try pathList(value, key: "artifacts.paths", max: ArtifactSpec.maxPaths, globs: true)
                hasPaths = true
            case "expire_in_days":
                guard case .scalar = value, let days = value.float, days > 0, days <= ArtifactSpec.maxExpireInDays else {
                    throw .invalidConfig("'artifacts.expire_in_days' must be a positive number of days, at most \(Int(ArtifactSpec.maxExpireInDays))")
                }
                spec.expireInDays = days
            case "when":
                let raw = try text(value, key: "artifacts.when")
                guard let when = ArtifactSpec.When(rawValue: raw) else {
                    throw .invalidConfig("'artifacts.when' must be one of on_success, always, not '\(raw)'")
                }
                spec.when = when
            default:
                throw .invalidConfig("unknown key '\(scalarString(keyNode) ?? "?")' in 'artifacts'; known keys: paths, expire_in_days, when")
            }
        }
        guard hasPaths else { throw .invalidConfig("'artifacts' has no 'paths': list the files to keep, e.g. [\"dist/*.tar.gz\"]") }
        return spec
    }

    /// A non-empty list of paths inside the workspace (or `~/`).
    private static func pathList(_ node: Node, key: String, max: Int, globs: Bool) throws(RapidFlowError) -> [String] {
        let paths = try stringList(node, key: key)
        guard !paths.isEmpty else { throw .invalidConfig("'\(key)' is empty: list at least one path") }
        guard paths.count <= max else { throw .invalidConfig("'\(key)' has \(paths.count) paths; at most \(max) are allowed") }
        for (index, path) in paths.enumerated() {
            if let problem = WorkspacePath.problem(path) { throw .invalidConfig("\(key)[\(index)] '\(path)' \(problem)") }
            if !globs, path.contains(where: { "*?[".contains($0) }) {
                throw .invalidConfig("\(key)[\(index)] '\(path)' is a pattern: cache paths are files or directories, without '*', '?' or '['")
            }
        }
        return paths
    }

    private static func stringList(_ node: Node, key: String) throws(RapidFlowError) -> [String] {
        guard case .sequence(let sequence) = node else { throw .invalidConfig("'\(key)' must be a list of strings") }
        var result: [String] = []
        for (index, item) in sequence.enumerated() {
            guard case .scalar = item, let value = scalarString(item) else { throw .invalidConfig("\(key)[\(index)] must be a string") }
            result.append(value)
        }
        return result
    }

    /// `on: {push: {branches: [main, "release/*"]}, tag: ["v*"], pull_request: {}}`.
    private static func triggerFilter(_ node: Node) throws(RapidFlowError) -> TriggerFilter {
        let usage = "'on' must be a mapping of events: {push: {branches: [main]}, tag: [\"v*\"], pull_request: {}}"
        guard case .mapping(let mapping) = node else { throw .invalidConfig(usage) }
        var filter = TriggerFilter()
        for (keyNode, value) in mapping {
            guard let key = scalarString(keyNode) else { throw .invalidConfig(usage) }
            switch key {
            case "push": filter.pushBranches = try patterns(value, key: "on.push", listKey: "branches")
            case "tag", "tags": filter.tags = try patterns(value, key: "on.\(key)", listKey: "tags")
            case "pull_request": filter.pullRequestBranches = try patterns(value, key: "on.pull_request", listKey: "branches")
            default:
                throw .invalidConfig("unknown event '\(key)' under 'on'; known events: push, tag, pull_request")
            }
        }
        return filter
    }

    /// An event's patterns: `{}` or nothing (every name), a list, or `{<listKey>: [...]}`.
    private static func patterns(_ node: Node, key: String, listKey: String) throws(RapidFlowError) -> [String] {
        switch node {
        case .scalar where scalarString(node) == nil: return []
        case .sequence(let sequence): return try patternList(sequence, key: key)
        case .mapping(let mapping):
            var result: [String] = []
            for (keyNode, value) in mapping {
                guard scalarString(keyNode) == listKey, case .sequence(let sequence) = value else {
                    throw .invalidConfig("'\(key)' takes only '\(listKey)': a list of patterns such as [main, \"release/*\"]")
                }
                result = try patternList(sequence, key: "\(key).\(listKey)")
            }
            return result
        default:
            throw .invalidConfig("'\(key)' must be {} (every name), a list of patterns, or {\(listKey): [...]}")
        }
    }

    private static func patternList(_ sequence: Node.Sequence, key: String) throws(RapidFlowError) -> [String] {
        var result: [String] = []
        for (index, item) in sequence.enumerated() {
            guard case .scalar = item, let pattern = scalarString(item), !pattern.isEmpty else {
                throw .invalidConfig("\(key)[\(index)] must be a non-empty string pattern")
            }
            result.append(pattern)
        }
        return result
    }

    private static func steps(_ node: Node, limits: Limits) throws(RapidFlowError) -> [StepConfig] {
        guard case .sequence(let sequence) = node else {
            throw .invalidConfig("'steps' must be a list of steps")
        }
        guard !sequence.isEmpty else {
            throw .invalidConfig("'steps' is empty: a pipeline needs at least one step")
        }
        guard sequence.count <= limits.maxSteps else {
            throw .invalidConfig("'steps' has \(sequence.count) steps; at most \(limits.maxSteps) are allowed")
        }
        var result: [StepConfig] = []
        for (index, item) in sequence.enumerated() {
            let label = "steps[\(index)]"
            var step: StepConfig
            switch item {
            case .scalar:
                guard let content = scalarString(item) else {
                    throw .invalidConfig("\(label) must be a string or a mapping with 'type' and 'content'")
                }
                step = StepConfig(type: .bash, name: nil, content: content, phase: .build)
            case .mapping(let mapping):
                var typeName = StepType.bash.rawValue, name: String?, content: String?, phase = Phase.build
                for (keyNode, value) in mapping {
                    guard let key = scalarString(keyNode) else {
                        throw .invalidConfig("\(label) keys must be strings")
                    }
                    switch key {
                    case "type": typeName = try text(value, key: "\(label).type")
                    case "name": name = try text(value, key: "\(label).name")
                    case "content": content = try text(value, key: "\(label).content")
                    case "phase":
                        let raw = try text(value, key: "\(label).phase")
                        guard let parsed = Phase(rawValue: raw) else {
                            throw .invalidConfig("\(label).phase '\(raw)' is not one of build, test, publish")
                        }
                        phase = parsed
                    default:
                        throw .invalidConfig(
                            "unknown key '\(key)' in \(label); known keys: \(knownStepKeys.sorted().joined(separator: ", "))")
                    }
                }
                guard let type = StepType(rawValue: typeName), StepType.pipelineTypes.contains(type) else {
                    let supported = StepType.pipelineTypes.map(\.rawValue).sorted().joined(separator: ", ")
                    throw .invalidConfig("\(label) has unknown type '\(typeName)'; supported types: \(supported)")
                }
                guard let content else {
                    throw .invalidConfig("\(label) has no 'content': give the bash script to run")
                }
                step = StepConfig(type: type, name: name, content: content, phase: phase)
            default:
                throw .invalidConfig("\(label) must be a string or a mapping with 'type' and 'content'")
            }
            guard !step.content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw .invalidConfig("\(label) has an empty script")
            }
            guard step.content.utf8.count <= limits.maxScriptBytes else {
                throw .invalidConfig("\(label) script is \(step.content.utf8.count) bytes; at most \(limits.maxScriptBytes) are allowed")
            }
            result.append(step)
        }
        return result
    }

    /// Literal values, and `{from_secret: NAME}` references.
    private static func environment(_ node: Node, limits: Limits) throws(RapidFlowError) -> ([(key: String, value: String)], [SecretReference]) {
        guard case .mapping(let mapping) = node else {
            throw .invalidConfig("'env' must be a mapping of NAME: \"value\" or NAME: {from_secret: SECRET}")
        }
        var result: [(key: String, value: String)] = []
        var references: [SecretReference] = []
        for (keyNode, value) in mapping {
            guard let key = scalarString(keyNode) else {
                throw .invalidConfig("'env' keys must be strings")
            }
            try EnvironmentValidation.checkName(key, field: "env")
            if case .mapping(let reference) = value {
                guard reference.count == 1, let entry = reference.first, scalarString(entry.key) == "from_secret" else {
                    throw .invalidConfig("env value of '\(key)' must be a string or {from_secret: NAME}")
                }
                let secretNode = entry.value
                guard case .scalar = secretNode, secretNode.tag.description == Tag.Name.str.rawValue, let secret = secretNode.string else {
                    throw .invalidConfig("env '\(key)': 'from_secret' must be a string naming a stored secret")
                }
                try SecretValidation.checkName(secret, code: .invalidConfig)
                references.append(SecretReference(key: key, secret: secret))
                continue
            }
            guard case .scalar = value, value.tag.description == Tag.Name.str.rawValue, let text = value.string else {
                throw .invalidConfig("env value of '\(key)' must be a string; quote it, e.g. \(key): \"value\"")
            }
            result.append((key, text))
        }
        try EnvironmentValidation.checkCount(result.count, limits: limits)
        return (result, references)
    }

    /// `secrets: [NAME, ...]`: each stored secret as the variable of its own name.
    private static func secretList(_ node: Node) throws(RapidFlowError) -> [SecretReference] {
        guard case .sequence(let sequence) = node else {
            throw .invalidConfig("'secrets' must be a list of stored secret names")
        }
        var result: [SecretReference] = []
        for (index, item) in sequence.enumerated() {
            guard case .scalar = item, item.tag.description == Tag.Name.str.rawValue, let name = item.string else {
                throw .invalidConfig("secrets[\(index)] must be a string naming a stored secret")
            }
            try SecretValidation.checkName(name, code: .invalidConfig)
            if !result.contains(where: { $0.key == name }) { result.append(SecretReference(key: name, secret: name)) }
        }
        return result
    }

    private static func text(_ node: Node, key: String) throws(RapidFlowError) -> String {
        guard case .scalar = node, let value = scalarString(node) else {
            throw .invalidConfig("'\(key)' must be a string")
        }
        return value
    }

    private static func seconds(_ node: Node, key: String, limits: Limits) throws(RapidFlowError) -> Double {
        guard case .scalar = node, let value = node.float, value > 0, value <= limits.maxTimeoutSeconds else {
            throw .invalidConfig("'\(key)' must be a positive number of seconds, at most \(Int(limits.maxTimeoutSeconds))")
        }
        return value
    }

    /// A scalar's text as written, whatever type YAML would resolve it to (`version: 1.21` is "1.21").
    private static func scalarString(_ node: Node) -> String? {
        guard case .scalar(let scalar) = node else { return nil }
        if scalar.tag.description == Tag.Name.null.rawValue { return nil }
        return scalar.string
    }

    /// `repo` gets the same rules as an image job's `repo_url`; a pipeline has no credentials field.
    public static func checkRepository(_ repo: String, repositories: RepositoryPolicy) throws(RapidFlowError) {
        try repositories.check(repo, field: "repo", code: .invalidConfig, credentialsAdvice: "credentials cannot be written in the URL")
    }

    static func checkRelativePath(_ path: String, key: String) throws(RapidFlowError) {
        if path.hasPrefix("/") || path.split(separator: "/").contains("..") || path.contains("\0") {
            throw .invalidConfig("'\(key)' must be a path inside the workspace (no leading '/', no '..')")
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let yaml = error as? YamlError {
            return String(describing: yaml).split(separator: "\n").first.map(String.init) ?? "parse error"
        }
        return "parse error"
    }
}

extension PipelineConfig {
    /// The steps and snapshot a job of this config runs; the clone of `repo` is its first step.
    /// With `commit`, the clone checks out exactly that commit (a forge event's).
    public func plan(configText: String, branchOverride: String?, commit: CommitInfo? = nil) -> (snapshot: JobSnapshot, steps: [StepPlan]) {
        let branch = branchOverride ?? self.branch
        var snapshot = JobSnapshot(
            language: language, version: version, image: image, repo: repo, branch: branch, folder: folder,
            exposePorts: exposePorts, config: configText, killTimeoutSeconds: killTimeoutSeconds,
            timeoutSeconds: timeoutSeconds)
        snapshot.priority = priority
        snapshot.commit = commit
        var steps: [StepPlan] = []
        if let repo {
            steps.append(StepPlan(type: .git, name: "clone", content: GitClonePlan(url: repo, ref: commit?.sha ?? branch).description, phase: .build))
        }
        if !caches.isEmpty {
            steps.append(StepPlan(type: .cacheRestore, name: "cache-restore", content: WorkspaceStepContent.encode(caches), phase: .build))
        }
        steps += self.steps.map { StepPlan(type: $0.type, name: $0.name, content: $0.content, phase: $0.phase) }
        if !caches.isEmpty {
            steps.append(StepPlan(type: .cacheSave, name: "cache-save", content: WorkspaceStepContent.encode(caches), phase: .publish))
        }
        if let artifacts {
            steps.append(StepPlan(type: .artifacts, name: "artifacts", content: WorkspaceStepContent.encode(artifacts), phase: .publish))
        }
        return (snapshot, steps)
    }
}
