import ArgumentParser
import Foundation
import RapidFlowAPI
import RapidFlowCore

/// `rapidflow artifacts JOB [--download DIR]`.
struct ArtifactsCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifacts",
        abstract: "List the files a job kept (its config's `artifacts:`); --download saves them under a folder.",
        discussion: "Files of the job's home are listed and saved under `~/` inside the folder.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int
    @Option(help: "Save every artifact under this folder, at its path (made if missing).") var download: String?

    func run(client: ServiceClient) async throws {
        let list: API.ArtifactList = try await client.call(.GET, "/jobs/\(job)/artifacts")
        if let download {
            try await save(list, into: download, client: client)
            return
        }
        if options.json { return try Terminal.json(list) }
        if list.artifacts.isEmpty { return Terminal.line("job \(job) kept no artifacts") }
        Terminal.table(
            ["PATH", "SIZE", "SHA-256", "EXPIRES"],
            list.artifacts.map { [$0.path, String($0.sizeBytes), $0.sha256, $0.expiresAt] })
    }

    private func save(_ list: API.ArtifactList, into folder: String, client: ServiceClient) async throws {
        let root = URL(fileURLWithPath: folder).standardizedFileURL.path
        for artifact in list.artifacts {
            // The path comes from the service; it still may not leave the folder.
            guard WorkspacePath.problem(artifact.path) == nil else {
                throw ValidationError("the service named an artifact path '\(artifact.path)' outside the folder; nothing more is saved")
            }
            let target = "\(root)/\(artifact.path)"
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: target, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: target) else { throw ValidationError("cannot write \(target)") }
            defer { try? handle.close() }
            try await client.stream(artifact.url) { chunk in try handle.write(contentsOf: Data(buffer: chunk)) }
            if !options.json { Terminal.line("\(artifact.path)  \(artifact.sizeBytes) bytes") }
        }
        if options.json { try Terminal.json(list) }
        FileHandle.standardError.write(Data("saved \(list.artifacts.count) artifact(s) of job \(job) under \(root)\n".utf8))
    }
}
