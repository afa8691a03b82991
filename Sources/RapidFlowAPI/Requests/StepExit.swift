import RapidFlowCore

extension API {
    /// `POST /runner/jobs/:id/steps/:step/exit`: how the runner's step ended, its exit code
    /// or why it could not run.
    public struct StepExit: Codable, Sendable, Equatable {
        /// 0 to 255, as a process can exit (128 + n for a signal n).
        public var exitCode: Int?
        public var error: String?

        public init(exitCode: Int? = nil, error: String? = nil) {
            self.exitCode = exitCode
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case exitCode = "exit_code", error
        }

        public static let fields = ["exit_code", "error"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            exitCode = try fields.integer("exit_code", range: 0...255)
            error = try fields.string("error")
        }
    }
}
