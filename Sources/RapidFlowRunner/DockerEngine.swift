import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The local Docker engine, reached through its API on the unix socket.
public struct DockerEngine: Sendable {
    public let socketPath: String

    public init(socketPath: String = "/var/run/docker.sock") {
        self.socketPath = socketPath
    }

    /// True when the engine answers `/_ping` within `timeout`.
    public func isReachable(timeout: TimeAmount = .seconds(2)) async -> Bool {
        (try? await ping(timeout: timeout)) != nil
    }

    /// Throws unless the engine answers `/_ping`.
    public func ping(timeout: TimeAmount = .seconds(2)) async throws {
        let response = try await HTTPClient.shared.execute(request(.GET, "/_ping"), timeout: timeout)
        _ = try await response.body.collect(upTo: 1024)
        guard response.status == .ok else { throw DockerEngineError(message: "the Docker engine answered \(response.status.code) to /_ping") }
    }
}

extension DockerEngine {
    /// Removes every container and image labelled with this job and service instance; returns how many of each.
    public func removeArtifacts(jobID: Int, instanceID: String) async throws -> (containers: Int, images: Int) {
        let filter = #"{"label":["rapidflow.job=\#(jobID)","rapidflow.instance=\#(instanceID)"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let containers = try await list("/containers/json?all=1&filters=\(filter)")
        for id in containers { try await send(.DELETE, "/containers/\(id)?force=1&v=1") }
        let images = try await listImages("/images/json?filters=\(filter)")
        for image in images {
            // The newest build of an owner's repository keeps its layers for the next build
            // (`layerCacheRepository`): only the job's own tag goes.
            if image.tags.contains(where: { $0.hasPrefix(Self.layerCacheRepository + "/") }) {
                for tag in image.tags where !tag.hasPrefix(Self.layerCacheRepository + "/") {
                    try await send(.DELETE, "/images/\(tag.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? tag)")
                }
            } else {
                try await send(.DELETE, "/images/\(image.id)?force=1")
            }
        }
        return (containers.count, images.count)
    }

    /// Where the newest image built for each owner and repository is tagged, one per pair:
    /// its layers are the next build's cache (the legacy builder reuses the layers of local
    /// images), and cleanup and the reaper leave it.
    public static let layerCacheRepository = "rapidflow-layers"

    /// The id of a local image, nil when there is none.
    public func imageID(_ reference: String) async throws -> String? {
        let path = "/images/\(reference.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? reference)/json"
        let response = try await HTTPClient.shared.execute(request(.GET, path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        guard response.status == .ok else { return nil }
        return (try? JSONDecoder().decode(EngineAnswer.self, from: Data(body.readableBytesView)))?.id
    }

    /// Removes an image unless something still uses it: a tag (a job's own build, which may
    /// still be testing), a child image or a container.
    public func removeImageIfUnused(_ id: String) async {
        guard let response = try? await HTTPClient.shared.execute(request(.GET, "/images/\(id)/json"), timeout: .seconds(30)),
            let body = try? await response.body.collect(upTo: 4 << 20), response.status == .ok,
            let image = try? JSONDecoder().decode(ImageSummary.self, from: Data(body.readableBytesView)),
            (image.repoTags ?? []).allSatisfy({ $0 == "<none>:<none>" })
        else { return }
        try? await send(.DELETE, "/images/\(id)")
    }

    /// Creates a container and returns its id (`POST /containers/create`).
    public func createContainer(image: String, entrypoint: [String]?, command: [String]?, labels: [String: String]) async throws -> String {
        let config = ContainerConfig(image: image, labels: labels, entrypoint: entrypoint, command: command)
        var request = request(.POST, "/containers/create")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(config)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        let answer = try? JSONDecoder().decode(EngineAnswer.self, from: Data(body.readableBytesView))
        guard response.status == .created, let id = answer?.id else {
            throw DockerEngineError(message: answer?.message ?? "the Docker engine answered \(response.status.code) to a container create")
        }
        return id
    }

    public func removeContainer(_ id: String) async throws {
        try await send(.DELETE, "/containers/\(id)?force=1&v=1")
    }

    /// Tags `source` as `repository:tag` (`POST /images/{name}/tag`).
    public func tagImage(_ source: String, repository: String, tag: String) async throws {
        let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }
        try await send(.POST, "/images/\(encode(source))/tag?repo=\(encode(repository))&tag=\(encode(tag))")
    }

    public func removeImage(_ reference: String) async throws {
        try await send(.DELETE, "/images/\(reference.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? reference)")
    }

    /// Removes every container of a service instance: at start-up they are all orphans of the previous run.
    public func removeContainers(instanceID: String) async throws -> Int {
        let filter = #"{"label":["rapidflow.instance=\#(instanceID)"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let containers = try await list("/containers/json?all=1&filters=\(filter)")
        for id in containers { try await send(.DELETE, "/containers/\(id)?force=1&v=1") }
        return containers.count
    }

    /// Ids of the running containers labelled for `jobID`.
    public func runningContainers(jobID: Int) async throws -> [String] {
        let filter = #"{"label":["rapidflow.job=\#(jobID)"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return try await list("/containers/json?filters=\(filter)")
    }

    /// The engine refuses the percent-encoded socket path as a Host header, so name a plain one.
    private func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.replaceOrAdd(name: "Host", value: "docker")
        return request
    }

    private var base: String {
        "http+unix://\(socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
    }

    private func list(_ path: String) async throws -> [String] {
        let response = try await HTTPClient.shared.execute(request(.GET, path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok, let items = try? JSONDecoder().decode([EngineAnswer].self, from: Data(body.readableBytesView))
        else { throw DockerEngineError(message: "the Docker engine answered \(response.status.code) to \(path.split(separator: "?")[0])") }
        return items.compactMap(\.id)
    }

    private func listImages(_ path: String) async throws -> [(id: String, tags: [String])] {
        let response = try await HTTPClient.shared.execute(request(.GET, path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok, let items = try? JSONDecoder().decode([ImageSummary].self, from: Data(body.readableBytesView))
        else { throw DockerEngineError(message: "the Docker engine answered \(response.status.code) to \(path.split(separator: "?")[0])") }
        return items.map { ($0.id, ($0.repoTags ?? []).filter { $0 != "<none>:<none>" }) }
    }

    private func send(_ method: HTTPMethod, _ path: String) async throws {
        let response = try await HTTPClient.shared.execute(request(method, path), timeout: .seconds(60))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(Int(response.status.code)) || response.status == .notFound else {
            throw DockerEngineError(message: "the Docker engine answered \(response.status.code) to \(method) \(path.split(separator: "?")[0])")
        }
    }
}

public struct DockerEngineError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The body of `POST /containers/create`.
private struct ContainerConfig: Encodable {
    var image: String
    var labels: [String: String]
    var attachStdout = true
    var attachStderr = true
    var entrypoint: [String]?
    var command: [String]?

    enum CodingKeys: String, CodingKey {
        case image = "Image", labels = "Labels", attachStdout = "AttachStdout", attachStderr = "AttachStderr"
        case entrypoint = "Entrypoint", command = "Cmd"
    }
}

/// What the engine answers about an object (its id), or why it refused.
private struct ImageSummary: Decodable {
    var id: String
    var repoTags: [String]?

    enum CodingKeys: String, CodingKey {
        case id = "Id", repoTags = "RepoTags"
    }
}

private struct EngineAnswer: Decodable {
    var id: String?
    var message: String?

    enum CodingKeys: String, CodingKey {
        case id = "Id", message
    }
}
