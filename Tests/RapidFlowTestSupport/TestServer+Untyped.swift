import Foundation
import Testing

// The answers read as JSONSerialization objects, while the tests move to the API's types.
// Removed once no test uses them.
extension TestServer.Reply {
    public var data: Any? { (json as? [String: Any])?["data"].flatMap { $0 is NSNull ? nil : $0 } }
    public var object: [String: Any] { data as? [String: Any] ?? [:] }
    public var array: [[String: Any]] { data as? [[String: Any]] ?? [] }
    public var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
}

extension TestServer {
    public func trigger(_ pipelineID: Int, json: Any) async throws -> Int {
        let reply = try await post("/pipelines/\(pipelineID)/jobs", json: json)
        try #require(reply.status == 200, "trigger: \(reply.text)")
        return try #require(reply.object["id"] as? Int)
    }

    public func jobObject(_ id: Int) async throws -> [String: Any] { try await get("/jobs/\(id)").object }

    @discardableResult
    public func waitForJobObject(_ id: Int, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        try await waitForJob(id, timeout: timeout)
        return try await jobObject(id)
    }

    public func waitForStatus(_ id: Int, _ status: String, timeout: Duration = .seconds(30)) async throws {
        try await eventually(timeout: timeout, "job \(id) reaches \(status)") { try await jobObject(id)["status"] as? String == status }
    }
}

extension RawResponse {
    public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(self.body)) as? [String: Any] }
}
