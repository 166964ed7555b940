import Logging
import Sandbox

/// What the host gives instances besides the launch itself: the cgroup v2 tree, the egress
/// network and the disk io.max applies to.
struct InstanceHost: Sendable {
    /// nil: no cgroup tree was set up (see `detached`); one whose `reason` is set: the host has
    /// none usable.
    let cgroups: CgroupV2?
    /// nil when the host cannot give instances outbound networking; `networkError` says why.
    let network: EgressNetwork?
    let networkError: String?
    /// The disk io.max limits apply to (the data dir's), or nil where they cannot.
    let ioDevice: String?
    /// Whether the instances' host id ranges are this appliance's to clear of processes. Not
    /// when detached: a daemon on the same host may own them.
    let ownsIDRanges: Bool

    var limitsAvailable: Bool { cgroups?.available ?? false }

    /// Sets up the daemon's share of the host: the cgroup tree (moving this process into its
    /// leaf unless the tree goes under `cgroupParent`) and the nftables table. Machine-global:
    /// the daemon's, never a test's.
    static func acquire(dataDir: String, cgroupParent: String?, logger: Logger) -> InstanceHost {
        let cgroups = CgroupV2(parent: cgroupParent)
        if let reason = cgroups.reason {
            logger.warning("""
                RESOURCE LIMITS UNAVAILABLE: instances will run WITHOUT memory, CPU and process limits. \
                \(reason). The API reports "limits": "unavailable" for every instance.
                """)
        } else {
            logger.info("cgroup v2 limits enforced", metadata: ["tree": "\(cgroups.base ?? "")", "controllers": "\(cgroups.controllers.joined(separator: ","))"])
        }
        var ioDevice: String?
        if cgroups.available && cgroups.controllers.contains("io") {
            let disk = BlockDevice.wholeDisk(containing: dataDir)
            ioDevice = disk.device
            if let reason = disk.reason { logger.warning("disk bandwidth limits unavailable", metadata: ["reason": "\(reason)"]) }
        } else if cgroups.available {
            logger.warning("disk bandwidth limits unavailable: the cgroup v2 tree has no io controller")
        }
        do {
            let network = try EgressNetwork()
            if !network.guardsForwarding {
                logger.notice("IPv4 forwarding was already on before claworc enabled it: the host routes between its other networks as configured; claworc filters only its instances' traffic")
            }
            return InstanceHost(cgroups: cgroups, network: network, networkError: nil, ioDevice: ioDevice, ownsIDRanges: true)
        } catch {
            logger.warning("instance networking unavailable: instances set to \"egress\" will not start", metadata: ["error": "\(error)"])
            return InstanceHost(cgroups: cgroups, network: nil, networkError: "\(error)", ioDevice: ioDevice, ownsIDRanges: true)
        }
    }

    /// Nothing of the host touched: no limits, no network, no process killed (in-process tests).
    static let detached = InstanceHost(cgroups: nil, network: nil, networkError: "this appliance was built without host networking",
                                       ioDevice: nil, ownsIDRanges: false)
}
