import Sandbox
import Supervisor

/// Each instance owns a stable range of 65536 host ids, numbered by its slot, kept across
/// restarts so its files keep their owners.
enum InstanceIDs {
    static let firstID: UInt32 = 0x1000_0000
    /// The highest id slot: its range must end below 2^32 - 1 (uid -1 means "no change" to
    /// chown), and the slot also numbers the instance's veth and /30 (EgressNetwork.maxSlot).
    static let maxSlot: Int64 = min(EgressNetwork.maxSlot,
                                    Int64((UInt32.max - firstID) / SandboxPolicy.idRangeSize) - 1)

    /// First host id of an instance's range, or nil for a slot outside 1...maxSlot (a row from
    /// before the cap). Slots start far above the ids of host users and the usual subuid ranges.
    static func idBase(slot: Int64) -> UInt32? {
        guard (1...maxSlot).contains(slot) else { return nil }
        return firstID + UInt32(slot) * SandboxPolicy.idRangeSize
    }
    static func agentHostUID(slot: Int64) -> UInt32? { idBase(slot: slot).map { $0 + ServiceCatalog.agentUID } }
}
