import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// The OpenAPI document the service serves: the repository's file, and every operation in it
/// answered by a real route with a status the document lists.
///
/// Schema conformance of the bodies is checked by `scripts/test-openapi.sh` (schemathesis);
/// this test keeps the document and the router from drifting apart. The document is read with
/// JSONSerialization: it is OpenAPI's structure, not one of the API's payloads.
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    static let repositoryFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/RapidFlowServer/Resources/openapi.json")

    /// One documented operation.
    struct Operation: CustomStringConvertible {
        let method: String
        let path: String
        let operation: [String: Any]

        var description: String { "\(method.uppercased()) \(path)" }
        var documentedStatuses: Set<Int> { Set((operation["responses"] as? [String: Any] ?? [:]).keys.compactMap { Int($0) }) }
        /// `security: []` marks the routes that stay open when a token is configured.
        var isOpen: Bool { (operation["security"] as? [Any])?.isEmpty == true }
    }

    static func operations(_ document: [String: Any]) -> [Operation] {
        let paths = document["paths"] as? [String: [String: Any]] ?? [:]
        return paths.flatMap { path, item in
            item.compactMap { method, value in
                (value as? [String: Any]).map { Operation(method: method, path: path, operation: $0) }
            }
        }
    }

    /// The example body of the operation's request schema, if it has one.
    static func exampleBody(_ operation: Operation, _ document: [String: Any]) throws -> String? {
        guard let content = (operation.operation["requestBody"] as? [String: Any])?["content"] as? [String: Any],
            let json = content["application/json"] as? [String: Any],
            let reference = (json["schema"] as? [String: Any])?["$ref"] as? String
        else { return nil }
        let name = String(reference.split(separator: "/").last ?? "")
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let example = try #require(((schemas?[name] as? [String: Any])?["examples"] as? [Any])?.first, "\(name) has an example")
        return String(decoding: try JSONSerialization.data(withJSONObject: example), as: UTF8.self)
    }

    func fetchDocument(_ server: TestServer) async throws -> (bytes: Data, document: [String: Any]) {
        let reply = try await server.get("/openapi.json")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type")?.hasPrefix("application/json") == true)
        return (reply.body, try #require(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any], "the document is a JSON object"))
    }

    @Test func theServedDocumentIsTheRepositoryFileAndEveryOperationHasARoute() async throws {
        try await TestServer.with { server in
            let (bytes, document) = try await fetchDocument(server)
            #expect(bytes == (try Data(contentsOf: Self.repositoryFile)), "the binary serves the repository's openapi.json")
            #expect(document["openapi"] as? String == "3.1.0")
            let operations = Self.operations(document)
            #expect(operations.count >= 24)

            // Real ids: a pipeline with a finished job, and a second pipeline to delete.
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo from the openapi test\n")
            let disposableID = try await server.createPipeline(name: "disposable", config: "steps:\n  - echo bye\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForJob(jobID)
            let stepID = try #require(try await server.logs(jobID).logs.first?.stepID)

            // Deleting comes last so every other operation finds the pipeline. The example body
            // of `PUT /pipelines/{id}` goes to the pipeline `POST /pipelines` made of the same
            // example: names are unique per owner.
            var createdByExample: Int?
            for operation in operations.sorted(by: { ($0.method == "delete" ? 1 : 0, $0.path, $0.method) < ($1.method == "delete" ? 1 : 0, $1.path, $1.method) }) {
                let id =
                    operation.path.hasPrefix("/pipelines/")
                    ? (operation.method == "delete" ? disposableID : operation.method == "put" ? (createdByExample ?? pipelineID) : pipelineID)
                    : operation.path.hasPrefix("/steps/") ? stepID : jobID
                let path = operation.path.replacingOccurrences(of: "{id}", with: String(id))
                    .replacingOccurrences(of: "{name}", with: "OPENAPI_TEST_SECRET")
                    .replacingOccurrences(of: "{owner}", with: "openapi-test")
                let body = try Self.exampleBody(operation, document)
                let reply = try await server.request(HTTPMethod(rawValue: operation.method.uppercased()), path, body: body)
                #expect(reply.errorCode != "route_not_found" && reply.status != 405, "\(operation) has no route: \(reply.status) \(reply.text.prefix(200))")
                #expect(operation.documentedStatuses.contains(reply.status), "\(operation) answered an undocumented \(reply.status): \(reply.text.prefix(200))")
                if operation.method == "post", operation.path == "/pipelines", reply.status == 200 {
                    createdByExample = try reply.decoded(API.Pipeline.self).id
                }
                // `POST /tokens` needs the service's own token, which this service has not: the
                // token tests send its example body.
                if body != nil, operation.path != "/tokens" {
                    #expect(reply.status == 200, "\(operation) refused the document's example body: \(reply.text.prefix(300))")
                }
            }
        }
    }

    @Test func securityDeclarationsMatchTheTokenGuard() async throws {
        try await TestServer.with(configure: { $0.apiToken = "openapi-test-token" }) { server in
            let (_, document) = try await fetchDocument(server)
            for operation in Self.operations(document) {
                let path = operation.path.replacingOccurrences(of: "{id}", with: "1").replacingOccurrences(of: "{name}", with: "SOME_SECRET")
                let reply = try await server.request(HTTPMethod(rawValue: operation.method.uppercased()), path)
                if operation.isOpen {
                    #expect(reply.errorCode != "unauthorized", "\(operation) is documented as open (a forge hook may refuse a signature, not a token)")
                } else {
                    #expect(reply.status == 401, "\(operation) is documented as guarded: \(reply.status)")
                    #expect(operation.documentedStatuses.contains(401), "\(operation) documents its 401")
                }
            }
        }
    }

    /// Every error code the service can answer is in the document's `ErrorCode`, so clients
    /// that validate answers accept every refusal.
    @Test func everyErrorCodeIsDocumented() throws {
        let source = try String(
            contentsOf: Self.repositoryFile.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("RapidFlowCore/Errors/RapidFlowError.swift"), encoding: .utf8)
        let codes = source.matches(of: /Code\(rawValue: "([a-z_]+)"\)/).map { String($0.output.1) }
        #expect(codes.count >= 25)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.repositoryFile)) as? [String: Any])
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let documented = Set(((schemas?["ErrorCode"] as? [String: Any])?["enum"] as? [String]) ?? [])
        for code in codes { #expect(documented.contains(code), "\(code) is not in the document's ErrorCode") }
    }
}
