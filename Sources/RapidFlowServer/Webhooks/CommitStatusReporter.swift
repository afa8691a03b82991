import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RapidFlowCore
import RapidFlowStore

/// Posts a job's state to its forge's commit status API when a hook with a forge token
/// started it: `pending` when it is created, then `success`, `failure` (or `error` when it
/// was cancelled). Reports go out one at a time, in the order asked, each with the job's
/// state when it is sent, so a late `pending` never follows a final state.
final class CommitStatusReporter: Sendable {
    private let store: any JobStore & WebhookStore
    private let vault: SecretVault
    private let client: HTTPClient
    private let baseURL: @Sendable () -> String
    private let allowedHosts: Set<String>?
    private let logger: Logger
    private let queue: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation

    init(
        store: any JobStore & WebhookStore, vault: SecretVault, client: HTTPClient, baseURL: @escaping @Sendable () -> String,
        allowedHosts: Set<String>?, logger: Logger
    ) {
        self.store = store
        self.vault = vault
        self.client = client
        self.baseURL = baseURL
        self.allowedHosts = allowedHosts
        self.logger = logger
        (queue, continuation) = AsyncStream<Int>.makeStream()
    }

    /// Queues a report of the job's current state; nothing is posted for a job no hook with
    /// a forge token started.
    func report(jobID: Int) { continuation.yield(jobID) }

    func finish() { continuation.finish() }

    func run() async {
        for await jobID in queue {
            do {
                guard let job = try await store.job(id: jobID), let target = job.snapshot.statusTarget, let commit = job.snapshot.commit else { continue }
                try await post(job, target: target, sha: commit.sha)
            } catch {
                logger.warning("could not post a commit status", metadata: ["job": "\(jobID)", "error": "\(error)"])
            }
        }
    }

    private func post(_ job: Job, target: CommitStatusTarget, sha: String) async throws {
        guard let hook = try await store.hook(id: target.hookID), let sealed = hook.sealedStatusToken, let api = hook.statusURL else { return }
        let token = try vault.open(sealed, purpose: "hook-status-token:\(hook.name)")
        let base = api.hasSuffix("/") ? String(api.dropLast()) : api
        let jobURL = "\(baseURL())/jobs/\(job.id)"
        let context = "rapidflow/\(job.pipelineName ?? "job")"
        let description = Self.description(job)
        var request: HTTPClientRequest
        switch hook.forge {
        case .github, .gitea:
            let state: String =
                switch job.status {
                case .pending, .running: "pending"
                case .success: "success"
                case .failed: "failure"
                case .cancelled: "error"
                }
            request = HTTPClientRequest(url: "\(base)/repos/\(target.repository)/statuses/\(sha)")
            let body: [String: String] = ["state": state, "target_url": jobURL, "description": description, "context": context]
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
            request.headers.add(name: "Content-Type", value: "application/json")
            if hook.forge == .github {
                request.headers.add(name: "Accept", value: "application/vnd.github+json")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            } else {
                request.headers.add(name: "Authorization", value: "token \(token)")
            }
        case .gitlab:
            let state: String =
                switch job.status {
                case .pending: "pending"
                case .running: "running"
                case .success: "success"
                case .failed: "failed"
                case .cancelled: "canceled"
                }
            var components = URLComponents(string: "\(base)/projects/\(target.repository)/statuses/\(sha)")
            components?.queryItems = [
                URLQueryItem(name: "state", value: state), URLQueryItem(name: "target_url", value: jobURL),
                URLQueryItem(name: "name", value: context), URLQueryItem(name: "description", value: description),
            ]
            request = HTTPClientRequest(url: components?.string ?? base)
            request.headers.add(name: "PRIVATE-TOKEN", value: token)
        case .git:
            return
        }
        request.method = .POST
        request.headers.add(name: "User-Agent", value: "RapidFlow")
        guard let host = URLComponents(string: request.url)?.host?.lowercased(), allowedHosts.map({ $0.contains(host) }) ?? true else {
            logger.warning("commit status not posted: the host is not allowed (--webhook-allow-hosts)", metadata: ["job": "\(job.id)"])
            return
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try? await response.body.collect(upTo: 64 << 10)
        if !(200..<300).contains(Int(response.status.code)) {
            logger.warning(
                "the forge refused a commit status", metadata: ["job": "\(job.id)", "status": "\(response.status.code)", "forge": "\(hook.forge.rawValue)"])
        } else {
            logger.debug("commit status posted", metadata: ["job": "\(job.id)", "state": "\(job.status.rawValue)"])
        }
    }

    private static func description(_ job: Job) -> String {
        switch job.status {
        case .pending: "waiting to start"
        case .running: "running"
        case .success: "the build passed"
        case .failed: "the build failed"
        case .cancelled: "the build was cancelled"
        }
    }
}
