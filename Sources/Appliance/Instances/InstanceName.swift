enum InstanceName {
    /// 1–40 characters of [a-z0-9-], starting with a letter: it becomes the hostname.
    static func validate(_ name: String) throws {
        let bytes = Array(name.utf8)
        let ok = (1...40).contains(bytes.count) && (97...122).contains(bytes[0])
            && bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
        guard ok else {
            throw InvalidInput("invalid_name",
                "An instance name is 1 to 40 characters of a-z, 0-9 and '-', starting with a letter.")
        }
    }
}
