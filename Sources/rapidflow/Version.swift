/// The release this source tree is; the commit comes from the build (`BuildInfo`, written by
/// the RapidFlowBuildInfo plugin).
enum RapidFlowVersion {
    static let number = "0.9.0"
    static var text: String { "rapidflow \(number) (commit \(BuildInfo.commit))" }
}
