import RapidFlowCore

extension API {
    /// `GET /runner/jobs/:id/next`: the step to run now, none yet (`step` null within the
    /// wait), or `done` once the job is over.
    public struct RunnerNext: Codable, Sendable {
        public var done: Bool
        @Nullable public var step: StepPayload?

        public init(done: Bool, step: StepPayload?) {
            self.done = done
            self.step = step
        }
    }

    /// `POST /runner/jobs/:id/steps/:step/output`: the step's output length the service now holds.
    public struct RunnerOutputReceived: Codable, Sendable, Equatable {
        public var received: Int

        public init(received: Int) {
            self.received = received
        }
    }

    /// `POST /runner/jobs/:id/steps/:step/exit`: the step whose end was recorded.
    public struct RunnerStepRecorded: Codable, Sendable, Equatable {
        public var stepID: Int

        public init(stepID: Int) {
            self.stepID = stepID
        }

        enum CodingKeys: String, CodingKey {
            case stepID = "step_id"
        }
    }

    /// `GET /runner/jobs/:id/steps/:step/signal`: the signal to stop the step with, or null
    /// when none came within the wait.
    public struct RunnerSignal: Codable, Sendable, Equatable {
        @Nullable public var signal: Int?

        public init(signal: Int?) {
            self.signal = signal
        }
    }
}
