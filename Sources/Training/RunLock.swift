import Foundation

/// A run folder's lock: a file created exclusively (O_EXCL, atomic on local and NFS v3+ file
/// systems) holding the host and pid. A lock whose process is gone (same host) or whose
/// heartbeat is older than `staleAfter` (any host) is taken over, so a killed run never stays
/// locked.
public final class RunLock: @unchecked Sendable {
    let url: URL
    private var lastBeat = Date()
    static let staleAfter: TimeInterval = 600

    private init(url: URL) { self.url = url }

    static var host: String { ProcessInfo.processInfo.hostName }

    /// The lock, or nil when a live process holds it.
    public static func acquire(_ folder: RunFolder) throws -> RunLock? {
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        let url = folder.lock
        for _ in 0..<3 {
            let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 {
                let text = "\(host) \(getpid())\n"
                _ = text.withCString { write(fd, $0, strlen($0)) }
                close(fd)
                return RunLock(url: url)
            }
            guard errno == EEXIST else { throw TrainingError("\(url.path): cannot create lock (\(String(cString: strerror(errno))))") }
            guard isStale(url) else { return nil }
            // take a stale lock over by renaming it away: of two processes that both found it
            // stale, only one rename succeeds
            let away = url.appendingPathExtension("stale-\(getpid())-\(UUID().uuidString)")
            if rename(url.path, away.path) == 0 { try? FileManager.default.removeItem(at: away) }
        }
        return nil
    }

    static func isStale(_ url: URL) -> Bool {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return false }
        let parts = text.split(whereSeparator: \.isWhitespace)
        if parts.count == 2, String(parts[0]) == host, let pid = Int32(parts[1]), pid != getpid() {
            // on this host the process itself answers; a live one keeps its lock however quiet it is
            if kill(pid, 0) != 0 && errno == ESRCH { return true }
            return isZombie(pid)
        }
        let modified = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date()
        return Date().timeIntervalSince(modified) > staleAfter
    }

    /// A process that has ended but not been reaped (its parent gone too, under an init that
    /// does not reap) still answers kill(pid, 0): /proc says it is a zombie.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Marks the lock alive (its modification time), at most every 30 s.
    public func heartbeat() {
        guard Date().timeIntervalSince(lastBeat) > 30 else { return }
        lastBeat = Date()
        _ = utimes(url.path, nil)
    }

    public func release() { try? FileManager.default.removeItem(at: url) }

    /// Who holds the lock of `folder`: "host pid", as written.
    public static func holder(_ folder: RunFolder) -> String {
        ((try? String(contentsOf: folder.lock, encoding: .utf8)) ?? "unknown").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
