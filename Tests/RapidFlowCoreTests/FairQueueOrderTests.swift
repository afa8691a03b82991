import RapidFlowCore
import Testing

/// The queue's order as `FairQueue` states it (the claim statement applies the same rule).
@Suite struct FairQueueOrderTests {
    typealias Entry = FairQueue.Entry

    static func order(_ pending: [Entry], running: [String: Int] = [:], limits: [String: Int] = [:], defaultLimit: Int? = nil) -> [Int] {
        let places = FairQueue(running: running, limits: limits, defaultLimit: defaultLimit).places(of: pending)
        return places.sorted { $0.value.position < $1.value.position }.map(\.key)
    }

    @Test func ownersTakeTurnsAndEachOwnersJobsKeepTheirOrder() {
        // a submitted 1...4, then b 5 and 6, then c 7.
        let pending = (1...4).map { Entry(id: $0, owner: "a", priority: .normal) }
            + [Entry(id: 5, owner: "b", priority: .normal), Entry(id: 6, owner: "b", priority: .normal), Entry(id: 7, owner: "c", priority: .normal)]
        #expect(Self.order(pending) == [1, 5, 7, 2, 6, 3, 4])
        // An owner that already runs two jobs waits its turn behind owners running none.
        #expect(Self.order(pending, running: ["a": 2]) == [5, 7, 6, 1, 2, 3, 4])
    }

    @Test func priorityComesBeforeFairnessAndLimitsPassOwnersOver() {
        let pending = [
            Entry(id: 1, owner: "a", priority: .low), Entry(id: 2, owner: "a", priority: .normal),
            Entry(id: 3, owner: "b", priority: .high), Entry(id: 4, owner: "a", priority: .high),
        ]
        #expect(Self.order(pending) == [3, 4, 2, 1])
        let places = FairQueue(running: ["a": 1], limits: ["b": 5], defaultLimit: 2).places(of: pending)
        // a runs 1 and may run 2: its first pending job may start, the rest wait for its limit.
        #expect(places[3] == QueuePlace(position: 1, waitingFor: .slot))
        #expect(places[4] == QueuePlace(position: 2, waitingFor: .slot))
        #expect(places[2]?.waitingFor == .ownerLimit)
        #expect(places[1]?.waitingFor == .ownerLimit)
        #expect(places[2]!.position < places[1]!.position)
    }

    @Test func priorityNamesAndOwnerNames() throws {
        #expect(try JobPriority.parse("high", field: "priority") == .high)
        #expect(throws: RapidFlowError.self) { try JobPriority.parse("urgent", field: "priority") }
        #expect(JobPriority(rank: 2) == .low)
        for good in ["a", "team-a", "0ops", "a.b_c-d", String(repeating: "x", count: 63)] {
            #expect(throws: Never.self) { try JobOwner.check(good, field: "owner") }
        }
        for bad in ["", "Team", "-a", ".a", "_a", "a b", "a/b", "é", String(repeating: "x", count: 64)] {
            #expect(throws: RapidFlowError.self, "\(bad)") { try JobOwner.check(bad, field: "owner") }
        }
    }

    @Test func aConcurrencyGroupLetsOnlyItsOldestJobThroughAndNoneWhileOneRuns() {
        let pending = [
            Entry(id: 1, owner: "a", priority: .normal, group: "deploy"), Entry(id: 2, owner: "a", priority: .high, group: "deploy"),
            Entry(id: 3, owner: "b", priority: .normal), Entry(id: 4, owner: "a", priority: .normal, group: "other"),
        ]
        let places = FairQueue(running: [:], limits: [:], defaultLimit: nil).places(of: pending)
        // 2 is high, but 1 is older in its group; a held job takes no turn of its owner's.
        #expect(places[2] == QueuePlace(position: 4, waitingFor: .concurrencyGroup("deploy")))
        #expect(places.sorted { $0.value.position < $1.value.position }.map(\.key) == [1, 3, 4, 2])
        let busy = FairQueue(running: ["a": 1], limits: [:], defaultLimit: nil, runningGroups: ["deploy"]).places(of: pending)
        #expect(busy[1]?.waitingFor == .concurrencyGroup("deploy") && busy[2]?.waitingFor == .concurrencyGroup("deploy"))
        #expect(busy.sorted { $0.value.position < $1.value.position }.map(\.key) == [3, 4, 2, 1])
        #expect(QueueWait.concurrencyGroup("deploy").name == "concurrency_group:deploy")
    }

    @Test func groupTemplatesAndModes() throws {
        let group = ConcurrencyGroup(template: "deploy-${owner}/${branch}", onConflict: .cancelPending)
        #expect(group.name(branch: "main", owner: "web") == "deploy-web/main")
        #expect(group.name(branch: nil, owner: "web") == "deploy-web/default")
        for good in ["g", "deploy:prod@eu", "${branch}", String(repeating: "x", count: 200)] {
            #expect(throws: Never.self) { try ConcurrencyGroup.check(good, field: "concurrency_group") }
        }
        for bad in ["", "a b", "${env}", "${branch", "é", "a\nb", String(repeating: "x", count: 201)] {
            #expect(throws: RapidFlowError.self, "\(bad)") { try ConcurrencyGroup.check(bad, field: "concurrency_group") }
        }
        #expect(try ConcurrencyGroup.OnConflict.parse("cancel_running", field: "on_conflict") == .cancelRunning)
        #expect(throws: RapidFlowError.self) { try ConcurrencyGroup.OnConflict.parse("cancel", field: "on_conflict") }
    }
}
