import Foundation

/// The user pipeline steps run as (`--step-user`), so they cannot read what the service and
/// the runner hold: both are not dumpable, which only keeps out processes of another user
/// that lack CAP_SYS_PTRACE, and a root step has it.
public struct StepIdentity: Sendable, Equatable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let groups: [gid_t]
    public let home: String

    /// Looks `user` (a name or a numeric uid) up in the system's user database.
    public init(user: String) throws {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 << 10)
        let status =
            if let uid = uid_t(user) { getpwuid_r(uid, &entry, &buffer, buffer.count, &result) } else {
                getpwnam_r(user, &entry, &buffer, buffer.count, &result)
            }
        guard status == 0, result != nil else {
            throw StepIdentityError(message: "--step-user '\(user)' is not a user of this machine")
        }
        guard entry.pw_uid != 0 else { throw StepIdentityError(message: "--step-user '\(user)' is root: give an unprivileged user") }
        name = String(cString: entry.pw_name)
        uid = entry.pw_uid
        gid = entry.pw_gid
        home = String(cString: entry.pw_dir)
        var count: Int32 = 64
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(entry.pw_name, entry.pw_gid, &list, &count) == -1 {
            list = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(entry.pw_name, entry.pw_gid, &list, &count)
        }
        groups = Array(list.prefix(Int(max(count, 0))))
    }

    /// Gives `path` (a job's workspace) to this user, so its steps can write there.
    public func own(_ path: String) {
        _ = chown(path, uid, gid)
    }
}

public struct StepIdentityError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
