import Glibc
import Sandbox
import Supervisor

/// `claworc __bench-launch`: the launch benchmark's own side (bench/launch.py runs it next
/// to bubblewrap and unshare). Hidden: it is a measuring tool, not a feature.
struct BenchLaunch {
    static let usage = """
        usage: claworc __bench-launch --data-dir DIR [--runs N] [--cycles N] [--egress]
          --runs N       timed launches (request to the init's acknowledgement), default 200
          --cycles N     launch/stop cycles for the leak check, default 500
          --egress       give each cycle a veth and allow-list entry, as an egress instance gets
          --slot N       the id slot (and veth number) to use, default 16000 (far from test daemons')
        """

    var runs = 200
    var cycles = 500
    var dataDir: String
    var egress = false
    /// The id slot (and veth number) of the benchmark's instance: far from the slots test daemons use.
    var slot: Int64 = 16000

    init(arguments: ArraySlice<String>) throws(UsageError) {
        let options = try CommandOptions(arguments, valued: ["runs", "cycles", "data-dir", "slot"], flags: ["egress"])
        guard let dir = try options.value("data-dir") else { throw UsageError("--data-dir is required") }
        dataDir = dir
        runs = try options.integer("runs") ?? runs
        cycles = try options.integer("cycles") ?? cycles
        slot = try options.integer("slot").map(Int64.init) ?? slot
        guard runs > 0, cycles >= 0 else { throw UsageError("--runs must be positive and --cycles not negative") }
        egress = options.flag("egress")
    }

    func run() throws {
        let paths = DataPaths(root: dataDir)
        try paths.prepare()
        // The daemon's own launch path: InstanceLauncher (the sealed init binary, the compiled
        // filters, the mount plan of a record and its settings) and its start(), with the host
        // parts a daemon acquires (cgroup tree, egress network).
        let launcher = try InstanceLauncher(paths: paths, services: .none, baseRoot: nil, disabled: [], initProgram: nil)
        let cgroups = CgroupV2()
        let network = egress ? try EgressNetwork() : nil
        let host = InstanceHost(cgroups: cgroups, network: network, networkError: nil, ioDevice: nil, ownsIDRanges: false)
        let record = InstanceRecord(id: 1, idSlot: slot, name: "bench", state: .stopped, autostart: false,
                                    createdAt: "", limits: "{}")
        FileSystem.makeDirectories(paths.home(record.id), mode: 0o700)
        chmod(paths.instanceDir(record.id), 0o711)
        var quiet = InstanceSettings.builtIn
        quiet.network = Configuration.Network.none.rawValue
        var egressSettings = InstanceSettings.builtIn
        egressSettings.egressAllow = ["192.0.2.1/32"]

        var execNs: [UInt64] = [], cloneNs: [UInt64] = [], setupNs: [UInt64] = [], requestNs: [UInt64] = []
        let clockPage = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        if let clockPage, clockPage != MAP_FAILED {
            Launcher.stageClock = clockPage.bindMemory(to: UInt64.self, capacity: 512)
        }
        var stageNs: [[UInt64]] = []
        // One start and stop as the daemon does them; returns request-prepared → hello in ms.
        func cycle(attachNetwork: Bool) throws -> Double {
            let settings = attachNetwork && network != nil ? egressSettings : quiet
            let t0 = Self.nowNs()
            let request = try launcher.request(for: record, settings: settings)
            let t1 = Self.nowNs()
            requestNs.append(t1 - t0)
            let runtime: InstanceRuntime
            do {
                runtime = try launcher.start(request, record: record, settings: settings, host: host)
            } catch {
                InstanceLauncher.release(id: record.id, slot: record.idSlot, allow: InstanceLauncher.allowList(settings), host: host)
                throw error
            }
            let elapsed = Double(Self.nowNs() - t1) / 1e6
            execNs.append(Launcher.lastReturnedAt &- t1)
            cloneNs.append(Launcher.lastTimings.clone)
            setupNs.append(Launcher.lastTimings.setup)
            stageNs.append(Launcher.lastStages)
            _ = InstanceLauncher.terminate(runtime.process)
            InstanceLauncher.release(id: record.id, slot: record.idSlot, allow: runtime.egressAllow ?? [], host: host)
            return elapsed
        }

        let mountsBefore = FileSystem.readText("/proc/self/mountinfo") ?? ""
        let processesBefore = Self.children()
        for _ in 0..<5 { _ = try cycle(attachNetwork: false) }   // warm-up: page cache, allocator
        var times: [Double] = []
        for _ in 0..<runs { times.append(try cycle(attachNetwork: false)) }
        times.sort()
        let execs = execNs.suffix(runs).sorted()
        func median(_ xs: [UInt64]) -> String { let s = xs.suffix(runs).sorted(); return Self.format(Double(s[s.count / 2]) / 1e6) }
        print("exec_ms median \(median(execs)) (launcher returned: the init is exec'd); of which clone3+maps \(median(cloneNs)), child setup to exec \(median(setupNs))")
        print("request_ms median \(median(requestNs)) (InstanceLauncher.request: home adopted, mount plan; not in launch_ms)")
        let timed = stageNs.suffix(runs)
        if let width = timed.first?.count, width == Launcher.stageClockNames.count {
            var previous: UInt64 = 0
            var parts: [String] = []
            for (i, name) in Launcher.stageClockNames.enumerated() {
                let at = timed.map { $0[i] }.sorted()[timed.count / 2]
                parts.append("\(name) +\(Self.format(Double(at &- previous) / 1e6))")
                previous = at
            }
            print("child_ms medians after go: " + parts.joined(separator: ", "))
        }
        print("launch_ms median \(Self.format(times[times.count / 2])) p90 \(Self.format(times[times.count * 9 / 10])) runs \(runs)")
        print("cgroup \(cgroups.available ? "v2 (CLONE_INTO_CGROUP)" : "unavailable: \(cgroups.reason ?? "")")")

        let t0 = Self.nowNs()
        for _ in 0..<cycles { _ = try cycle(attachNetwork: egress) }
        let seconds = Double(Self.nowNs() - t0) / 1e9
        print("cycles \(cycles) in \(Self.format(seconds)) s = \(Self.format(Double(cycles) / seconds)) cycles/s (veth: \(egress))")
        let leakedMounts = (FileSystem.readText("/proc/self/mountinfo") ?? "") != mountsBefore
        let leakedProcesses = Self.children().subtracting(processesBefore)
        let leakedCgroup = cgroups.instancePath(record.id).map(FileSystem.isDirectory) ?? false
        let links = (try? HostCommand.run(["ip", "-o", "link"])) ?? ""
        let veth = EgressNetwork.addresses(slot: slot).interface
        let leakedVeth = links.contains(": \(veth)@") || links.contains(": \(veth):")
        // A namespace outlives its processes only if something pins it: a bind mount (seen in
        // the mount table) or an open nsfs descriptor, here.
        let leakedNamespaces = Self.namespaceDescriptors()
        print("leaks processes \(leakedProcesses.count) mounts \(leakedMounts ? 1 : 0) cgroups \(leakedCgroup ? 1 : 0) veth \(leakedVeth ? 1 : 0) namespaces \(leakedNamespaces)")
        if !leakedProcesses.isEmpty || leakedMounts || leakedCgroup || leakedVeth || leakedNamespaces > 0 { exit(1) }
    }

    static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func format(_ v: Double) -> String {
        let scaled = Int((v * 100).rounded())
        return "\(scaled / 100).\(String(scaled % 100).count == 1 ? "0" : "")\(scaled % 100)"
    }

    /// Descriptors of this process that hold a namespace (nsfs: "net:[4026532…]").
    static func namespaceDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let target = FileSystem.symlinkTarget("/proc/self/fd/" + name) else { continue }
            if ["cgroup:[", "ipc:[", "mnt:[", "net:[", "pid:[", "time:[", "user:[", "uts:["].contains(where: target.hasPrefix) { count += 1 }
        }
        return count
    }

    /// Pids whose parent is this process.
    static func children() -> Set<Int32> {
        let me = getpid()
        var found: Set<Int32> = []
        guard let dir = opendir("/proc") else { return found }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let pid = Int32(name), let stat = FileSystem.readText("/proc/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == me { found.insert(pid) }
        }
        return found
    }
}
