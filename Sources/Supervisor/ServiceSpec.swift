import Glibc
import Sandbox

/// How the supervisor learns that a started service is ready for its dependents.
public enum Readiness: Sendable, Equatable {
    /// The service writes to an fd we pass it (Xvfb's `-displayfd`), as s6's notification-fd.
    case notifyFD
    /// A TCP connect to 127.0.0.1:port inside the instance succeeds.
    case tcp(port: UInt16)
}

public struct ServiceSpec: Sendable {
    public var name: String
    public var path: String
    public var arguments: [String]
    public var environment: [String]
    public var dependsOn: [String]
    public var readiness: Readiness
    /// Files removed before every start (stale locks a killed process leaves behind).
    public var staleFiles: [String]
    public var uid: uid_t
    public var gid: gid_t
    public var workingDirectory: String
    /// Chromium builds its own sandbox from user namespaces; every other service gets the
    /// add-on seccomp filter that forbids creating namespaces.
    public var mayCreateNamespaces: Bool

    public init(name: String, path: String, arguments: [String], environment: [String],
                dependsOn: [String], readiness: Readiness, staleFiles: [String] = [],
                uid: uid_t, gid: gid_t, workingDirectory: String, mayCreateNamespaces: Bool = false) {
        self.mayCreateNamespaces = mayCreateNamespaces
        self.name = name
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.dependsOn = dependsOn
        self.readiness = readiness
        self.staleFiles = staleFiles
        self.uid = uid
        self.gid = gid
        self.workingDirectory = workingDirectory
    }
}

/// The services every instance runs: a virtual display, a VNC server on it and Chromium.
public enum ServiceCatalog {
    public static let agentUID: uid_t = 1000
    public static let agentGID: gid_t = 1000
    public static let home = "/home/claworc"
    /// Chromium's own user: it may create namespaces (its sandbox), so nothing the agent can
    /// write or signal may reach it. The agent drives it over DevTools and VNC only.
    public static let browserUID: uid_t = 1001
    public static let browserGID: gid_t = 1001
    public static let browserHome = MountPlan.browserHomePath
    public static let display = ":0"
    public static let vncPort: UInt16 = 5900
    public static let devToolsPort: UInt16 = 9222
    public static let runtimeDir = "/run/user/1000"
    public static func runtimeDir(_ uid: uid_t) -> String { "/run/user/\(uid)" }

    public static let agentEnvironment = [
        "HOME=\(home)", "USER=claworc", "LOGNAME=claworc", "SHELL=/bin/bash",
        "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "DISPLAY=\(display)",
        "XDG_RUNTIME_DIR=\(runtimeDir)",
    ]

    /// The service set an instance runs: "standard", or "none" for an instance of only its init.
    public static func named(_ set: String, screen: String = "1280x800") -> [ServiceSpec] {
        set == "none" ? [] : standard(screen: screen)
    }

    public static func standard(screen: String = "1280x800") -> [ServiceSpec] {
        let size = screen.split(separator: "x").map(String.init)
        let windowSize = size.count == 2 ? "\(size[0]),\(size[1])" : "1280,800"
        let env = agentEnvironment
        let browserEnv = [
            "HOME=\(browserHome)", "USER=browser", "LOGNAME=browser", "SHELL=/bin/sh",
            "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "DISPLAY=\(display)",
            "XDG_RUNTIME_DIR=\(runtimeDir(browserUID))",
        ]
        let profile = "\(browserHome)/profile"
        return [
            ServiceSpec(
                name: "xvfb", path: "/usr/bin/Xvfb",
                arguments: ["Xvfb", display, "-screen", "0", "\(screen)x24", "-nolisten", "tcp",
                            "-displayfd", "3"],
                environment: env, dependsOn: [], readiness: .notifyFD,
                uid: agentUID, gid: agentGID, workingDirectory: home),
            ServiceSpec(
                name: "vnc", path: "/usr/bin/x11vnc",
                arguments: ["x11vnc", "-display", display, "-rfbport", String(vncPort), "-localhost",
                            "-forever", "-shared", "-nopw", "-quiet"],
                environment: env, dependsOn: ["xvfb"], readiness: .tcp(port: vncPort),
                uid: agentUID, gid: agentGID, workingDirectory: home),
            ServiceSpec(
                name: "chromium", path: "/usr/lib/chromium/chromium",
                arguments: ["chromium", "--user-data-dir=\(profile)",
                            "--remote-debugging-address=127.0.0.1",
                            "--remote-debugging-port=\(devToolsPort)",
                            "--no-first-run", "--no-default-browser-check", "--password-store=basic",
                            "--disable-component-update", "--disable-background-networking", "--ozone-platform=x11",
                            "--window-position=0,0", "--window-size=\(windowSize)", "about:blank"],
                environment: browserEnv, dependsOn: ["xvfb"], readiness: .tcp(port: devToolsPort),
                staleFiles: ["\(profile)/SingletonLock", "\(profile)/SingletonSocket", "\(profile)/SingletonCookie"],
                uid: browserUID, gid: browserGID, workingDirectory: browserHome, mayCreateNamespaces: true),
        ]
    }
}
