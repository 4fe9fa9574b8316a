import Foundation

/// Files that survive a power loss or a host crash: contents synced before the rename that marks
/// them complete, and the folder synced after it (so the new name itself is on disk). Without
/// the first sync a renamed file can hold zeros after a crash; without the second the rename can
/// be lost.
public enum DurableFiles {
    public struct WriteError: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    static func failure(_ what: String, _ path: String) -> WriteError {
        WriteError("\(path): cannot \(what) (\(String(cString: strerror(errno))))")
    }

    /// fsync of a file or folder (a folder's entries, not its files' contents).
    public static func sync(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw failure("open to sync", url.path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("sync", url.path) }
    }

    /// Syncs `from` (a file, or a folder and every file in it), renames it to `to` (replacing a
    /// file or folder there) and syncs the folder that holds `to`.
    public static func commit(_ from: URL, to: URL) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: from.path, isDirectory: &isFolder) else { throw WriteError("\(from.path): nothing to commit") }
        if isFolder.boolValue {
            for name in try fm.contentsOfDirectory(atPath: from.path) { try sync(from.appendingPathComponent(name)) }
        }
        try sync(from)
        if isFolder.boolValue, fm.fileExists(atPath: to.path) { try fm.removeItem(at: to) }
        guard rename(from.path, to.path) == 0 else { throw failure("rename \(from.lastPathComponent) to", to.path) }
        try sync(to.deletingLastPathComponent())
    }

    /// Writes `data` under a temporary name beside `url` (making `url`'s folder when missing),
    /// then commits it to `url`. A failed write (a full disk) removes the temporary file and
    /// throws naming `url`.
    public static func write(_ data: Data, to url: URL) throws {
        let folder = url.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw WriteError("\(url.path): cannot create its folder \(folder.path)")
        }
        let tmp = folder.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UUID().uuidString).tmp")
        do {
            try writeWhole(data, to: tmp)
            try commit(tmp, to: url)
        } catch let error as WriteError {
            try? FileManager.default.removeItem(at: tmp)
            throw WriteError(error.description.replacingOccurrences(of: tmp.path, with: url.path))
        }
    }

    /// Writes `data` to a new file at `url` with plain write(2) calls, so a full disk or a file
    /// size limit surfaces as an error naming the file rather than as a signal.
    public static func writeWhole(_ data: Data, to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw failure("create", url.path) }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw failure("write \(raw.count) bytes to", url.path) }
                done += n
            }
        }
    }
}

/// FNV-1a 64 of `bytes`, continuing from `hash` (so a stream can be hashed block by block).
public func fnv1a64(_ bytes: UnsafeRawBufferPointer, continuing hash: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var h = hash
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}
