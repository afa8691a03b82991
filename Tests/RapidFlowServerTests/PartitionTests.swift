import Foundation
import RapidFlowRunner
import RapidFlowTestSupport
import Testing

/// Two replicas and a runner on hosts of their own: network namespaces the test makes, joined
/// by a bridge in the test's namespace, which reaches PostgreSQL through a forwarder on the
/// bridge's address. Nothing listens outside the test's own addresses.
@Suite("Replicas and a runner on separate hosts", .serialized)
struct PartitionTests {
    /// The bridge and one namespace per host, each joined to the bridge by a veth pair.
    struct Network {
        struct Host {
            let namespace: String
            let address: String
            /// The veth end on the bridge's side: down, the host is cut off.
            let link: String
        }

        let bridge: String
        let gateway: String
        let hosts: [String: Host]

        static func make(_ names: [String]) async throws -> Network {
            let suffix = String(UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(4))
            let subnet = "10.231.\(Int.random(in: 1...254))"
            let bridge = "rfb\(suffix)"
            // The firewall's FORWARD policy here drops bridged traffic (the Docker engine sets it):
            // hosts on this bridge may talk to each other.
            var script = """
                set -e
                ip link add \(bridge) type bridge
                ip addr add \(subnet).1/24 dev \(bridge)
                ip link set \(bridge) up
                iptables -I FORWARD -i \(bridge) -o \(bridge) -j ACCEPT

                """
            var hosts: [String: Host] = [:]
            for (index, name) in names.enumerated() {
                let namespace = "rf\(suffix)\(name)", outer = "rf\(suffix)\(name)h", inner = "rf\(suffix)\(name)n"
                let address = "\(subnet).\(index + 2)"
                script += """
                    ip netns add \(namespace)
                    ip link add \(outer) type veth peer name \(inner)
                    ip link set \(inner) netns \(namespace)
                    ip link set \(outer) master \(bridge) up
                    ip netns exec \(namespace) ip addr add \(address)/24 dev \(inner)
                    ip netns exec \(namespace) ip link set \(inner) up
                    ip netns exec \(namespace) ip link set lo up

                    """
                hosts[name] = Host(namespace: namespace, address: address, link: outer)
            }
            let network = Network(bridge: bridge, gateway: "\(subnet).1", hosts: hosts)
            do {
                try await TestFiles.shell(script)
            } catch {
                network.remove()
                throw error
            }
            return network
        }

        func remove() {
            for host in hosts.values { TestFiles.shellNow("ip netns del \(host.namespace) 2>/dev/null; ip link del \(host.link) 2>/dev/null") }
            TestFiles.shellNow("iptables -D FORWARD -i \(bridge) -o \(bridge) -j ACCEPT 2>/dev/null; ip link del \(bridge) 2>/dev/null")
        }
    }

    /// Forwards TCP connections on `host`:`port` to 127.0.0.1:`target` (PostgreSQL listens on
    /// loopback only).
    static func forwarder(host: String, port: Int, target: Int) async throws -> Process {
        let script = """
            import asyncio, sys
            async def pipe(reader, writer):
                try:
                    while True:
                        data = await reader.read(65536)
                        if not data: break
                        writer.write(data)
                        await writer.drain()
                except Exception: pass
                finally: writer.close()
            async def handle(reader, writer):
                try: upstream_reader, upstream_writer = await asyncio.open_connection('127.0.0.1', \(target))
                except Exception: writer.close(); return
                await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
            async def main():
                server = await asyncio.start_server(handle, '\(host)', \(port))
                async with server: await server.serve_forever()
            asyncio.run(main())
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        // Never the test's own output: a process left holding it keeps `swift test` waiting.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ProcessSpawning.run(process)
        try await eventually("the forwarder listens on \(host):\(port)") { TestFiles.listens(on: port, host: host) }
        return process
    }

    /// One replica cut off from PostgreSQL (its link down): the other settles its job within
    /// about a lease, the runner on its own host stops the job's step once it cannot reach
    /// its replica, and nothing runs the job a second time.
    @Test func aReplicaCutOffFromTheDatabaseHasItsJobSettledByTheOtherAndItsRunnerStopsTheStep() async throws {
        try await ScratchDatabase.with { url in
            let network = try await Network.make(["a", "b", "r"])
            defer { network.remove() }
            let (a, b, r) = (network.hosts["a"]!, network.hosts["b"]!, network.hosts["r"]!)
            let forwarder = try await Self.forwarder(host: network.gateway, port: 15433, target: 5433)
            defer { kill(forwarder.processIdentifier, SIGKILL) }
            let bridged = url.replacingOccurrences(of: "@127.0.0.1:5433/", with: "@\(network.gateway):15433/")
            try #require(bridged != url, "the database URL names 127.0.0.1:5433: \(url)")

            // The runner's host: the replica starts its runners through `ip netns exec`.
            let work = TestFiles.temporaryDirectory()
            let runnerProgram = "\(work)/runner-on-r"
            try "#!/bin/sh\nexec /usr/sbin/ip netns exec \(r.namespace) \(ServiceProcess.binary) \"$@\"\n".write(
                toFile: runnerProgram, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: runnerProgram)
            func replica(_ host: Network.Host, _ arguments: [String]) async throws -> ServiceProcess {
                try await ServiceProcess.start(
                    dataDirectory: TestFiles.temporaryDirectory(),
                    arguments: ["--host", host.address, "--lease-seconds", "3", "--kill-grace-seconds", "1"] + arguments,
                    environment: ["RAPIDFLOW_DATABASE": bridged], wrapper: ["/usr/sbin/ip", "netns", "exec", host.namespace])
            }
            let first = try await replica(a, ["--executor", "runner", "--runner-binary", runnerProgram])
            defer { first.kill(signal: SIGKILL) }
            #expect(first.client.host == a.address)

            let token = "rf-partition-\(UUID().uuidString.prefix(8))"
            let runs = "\(work)/runs"
            let pipeline = try await first.client.createPipeline(
                config: "steps:\n  - echo ran >> \(runs); echo started; exec -a \(token) sleep 300\n  - echo never\n")
            let jobID = try await first.client.trigger(pipeline)
            try await first.client.waitForOutput(jobID, containing: "started")
            let runner = "runner --server http://\(a.address):\(first.client.port) --job \(jobID) "
            defer { TestFiles.shellNow("pkill -KILL -f '\(token)'; pkill -KILL -f '\(runner)'") }
            #expect(TestFiles.processExists(matching: runner), "the runner runs, on its own host")
            let second = try await replica(b, ["--executor", "shell"])
            defer { second.kill(signal: SIGKILL) }

            TestFiles.shellNow("ip link set \(a.link) down")
            let cut = ContinuousClock.now
            try await eventually(timeout: .seconds(60), "B settles the job of A, which lost the database") {
                try await second.client.job(jobID).status == .failed
            }
            let settled = ContinuousClock.now - cut
            #expect(settled < .seconds(20), "about one lease (3 s) after the cut, with a margin for a loaded machine: \(settled)")
            let logs = try await second.client.logs(jobID).logs
            #expect(logs.map(\.status) == [.failed, .skipped])
            #expect(logs.first?.output.contains("stopped renewing its lease") == true, "\(logs.first?.output ?? "")")

            try await eventually(timeout: .seconds(60), "the runner stops the step once it cannot reach A") { !TestFiles.processExists(matching: token) }
            try await eventually(timeout: .seconds(30), "the runner exits") { !TestFiles.processExists(matching: runner) }
            #expect(try String(contentsOfFile: runs, encoding: .utf8) == "ran\n", "the step ran once")
            let epoch = try await TestFiles.shell("psql '\(url)' -tAc 'SELECT lease_epoch FROM jobs WHERE id = \(jobID)'")
            #expect(epoch.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "claimed once")
        }
    }
}
