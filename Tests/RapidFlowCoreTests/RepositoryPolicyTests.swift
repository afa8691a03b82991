import Foundation
import Testing

@testable import RapidFlowCore

/// Clone sources are classified as git reads them, so what is refused is what git would clone.
@Suite("Repository sources")
struct RepositoryPolicyTests {
    @Test(arguments: [
        ("https://git.example.com/team/app.git", RepositoryPolicy.Kind.url(scheme: "https")),
        ("ssh://git@host:22/x.git", .url(scheme: "ssh")),
        ("file:///tmp/r.git", .url(scheme: "file")),
        ("git@github.com:team/app.git", .scpLike),
        // git's url_is_local_not_ssh: a '/' before the first ':' makes it a path.
        ("/tmp/x@y:repo.git", .localPath),
        ("./x@y:repo.git", .localPath),
        ("[/tmp/x]:repo", .localPath),
        ("/srv/repo.git", .localPath),
        ("repo.git", .localPath),
        ("ext::sh -c touch% /tmp/pwned", .remoteHelper("ext")),
        ("fd::3", .remoteHelper("fd")),
    ])
    func sourcesAreClassifiedAsGitDoes(source: String, kind: RepositoryPolicy.Kind) {
        #expect(RepositoryPolicy.kind(of: source) == kind)
    }

    static let local = [
        "file:///tmp/r.git", "file://localhost/tmp/r.git", "/tmp/x@y:repo.git", "/srv/repo.git", "./rel", "../up.git",
    ]

    @Test(arguments: local)
    func localSourcesAreRefusedUnlessAllowed(source: String) throws {
        let error = #expect(throws: RapidFlowError.self) {
            try RepositoryPolicy.remoteOnly.check(source, field: "repo_url", code: .invalidRequest, credentialsAdvice: "")
        }
        #expect(error?.message.contains("--allow-local-repos") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("repo_url") == true)
    }

    @Test func allowedLocalSourcesMustBeAbsolute() throws {
        let allowed = RepositoryPolicy(allowsLocal: true)
        for source in ["file:///tmp/r.git", "file://localhost/tmp/r.git", "/tmp/x@y:repo.git", "/srv/repo.git"] {
            try allowed.check(source, field: "repo", code: .invalidConfig, credentialsAdvice: "")
        }
        for source in ["./rel", "../up.git", "repo.git", "file://otherhost/tmp/r.git", "file://"] {
            #expect(throws: RapidFlowError.self, "\(source)") {
                try allowed.check(source, field: "repo", code: .invalidConfig, credentialsAdvice: "")
            }
        }
    }

    @Test(arguments: ["https://u:p@host/x.git", "ssh://u:p@host/x.git", "https://token@host/x.git", "git://u:p@host/x.git"])
    func credentialsInTheURLAreRefusedWithoutShowingThem(source: String) throws {
        let error = #expect(throws: RapidFlowError.self) {
            try RepositoryPolicy(allowsLocal: true).check(source, field: "repo_url", code: .invalidRequest, credentialsAdvice: "use git_credentials_path")
        }
        let message = error?.message ?? ""
        #expect(message.contains("credentials") && message.contains("git_credentials_path"), "\(message)")
        #expect(!message.contains("u:p") && !message.contains("token"))
    }

    @Test(arguments: [
        "ext::sh -c touch% /tmp/pwned", "ext::/tmp/x", "fd::3", "http://host/x.git", "ftp://host/x", "HTTPS://host/x.git",
        "-oProxyCommand=x", "host:path", "user@-oProxyCommand=x:path", "user@host:", "https://-host/x", "https:///x",
    ])
    func otherSourcesAreRefusedEvenWhenLocalOnesAreAllowed(source: String) {
        #expect(throws: RapidFlowError.self, "\(source)") {
            try RepositoryPolicy(allowsLocal: true).check(source, field: "repo", code: .invalidConfig, credentialsAdvice: "")
        }
    }

    @Test func remoteSourcesAreAccepted() throws {
        for source in ["https://git.example.com/team/app.git", "ssh://git@host:2222/srv/app.git", "git://host/app.git", "git@host:team/app.git"] {
            try RepositoryPolicy.remoteOnly.check(source, field: "repo_url", code: .invalidRequest, credentialsAdvice: "")
        }
    }

    @Test func gitTransportsFollowThePolicy() {
        #expect(RepositoryPolicy.remoteOnly.gitProtocols == ["https", "ssh", "git"])
        #expect(RepositoryPolicy(allowsLocal: true).gitProtocols.contains("file"))
    }
}
