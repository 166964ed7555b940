/// The most recent output of a terminal, replayed to whoever attaches: a fixed-size ring of
/// bytes (older output is overwritten, never grown past `capacity`).
struct ScrollbackRing: Sendable {
    let capacity: Int
    private var storage: [UInt8]
    /// Where the next byte goes.
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage = [UInt8](repeating: 0, count: capacity)
    }

    mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        var slice = bytes[...]
        // Only the last `capacity` bytes of a chunk can survive.
        if slice.count > capacity { slice = slice.dropFirst(slice.count - capacity) }
        let n = slice.count
        let first = min(n, capacity - head)
        storage.replaceSubrange(head..<head + first, with: slice.prefix(first))
        if n > first { storage.replaceSubrange(0..<n - first, with: slice.dropFirst(first)) }
        head = (head + n) % capacity
        count = min(capacity, count + n)
    }

    /// The retained bytes, oldest first.
    var contents: [UInt8] {
        let start = (head - count + capacity) % capacity
        if start + count <= capacity { return Array(storage[start..<start + count]) }
        return Array(storage[start..<capacity]) + Array(storage[0..<(start + count - capacity)])
    }
}
