import Foundation

/// The bytes of prepared frames that every video of a preparation may hold in memory together;
/// a video that would pass it spills to disk instead.
public final class FrameMemoryBudget: @unchecked Sendable {
    public let limit: Int
    private let lock = NSLock()
    private var held = 0
    /// The most held at once, for tests and the summary.
    public private(set) var peak = 0

    public init(limit: Int) { self.limit = limit }

    /// Takes `bytes` if they fit, else nothing.
    func reserve(_ bytes: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard held + bytes <= limit else { return false }
        held += bytes
        peak = max(peak, held)
        return true
    }

    func release(_ bytes: Int) { lock.lock(); held -= bytes; lock.unlock() }
}

/// One video's frames (F, H, W, 3) and quantised flow (F, H, W, 2) as preparation produces them,
/// window by window: in memory while the budget allows, then in two files in `spillFolder`, so a
/// long video costs disk rather than memory. The files are removed with the store.
final class FrameStore {
    let rgbFrameBytes: Int, flowFrameBytes: Int
    private(set) var frames = 0
    private var rgb: [UInt8] = [], flow: [UInt8] = []
    private var reserved = 0
    private var spill: (rgb: FileHandle, flow: FileHandle?, urls: [URL])?
    let budget: FrameMemoryBudget
    let spillFolder: URL
    /// The preparation's part, in the spill files' names (`removeLeftovers`).
    let part: Int
    /// Whether the frames went to disk.
    var spilled: Bool { spill != nil }

    init(rgbFrameBytes: Int, flowFrameBytes: Int, budget: FrameMemoryBudget, spillFolder: URL, part: Int = 0) {
        self.rgbFrameBytes = rgbFrameBytes; self.flowFrameBytes = flowFrameBytes
        self.budget = budget; self.spillFolder = spillFolder; self.part = part
    }

    deinit {
        budget.release(reserved)
        if let spill {
            try? spill.rgb.close(); try? spill.flow?.close()
            for url in spill.urls { try? FileManager.default.removeItem(at: url) }
        }
    }

    /// Files a stopped preparation left in `folder` (their stores never ended).
    static func removeLeftovers(in folder: URL, part: Int) {
        let prefix = ".spill-part\(part)-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where name.hasPrefix(prefix) {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
    }

    /// Adds `count` frames: `rgb` (count, H, W, 3) and, with flow, `flow` (count, H, W, 2).
    func append(rgb newRGB: UnsafeBufferPointer<UInt8>, flow newFlow: UnsafeBufferPointer<UInt8>?, frames count: Int) throws {
        precondition(newRGB.count == count * rgbFrameBytes && (newFlow?.count ?? 0) == count * flowFrameBytes)
        if spill == nil {
            let bytes = newRGB.count + (newFlow?.count ?? 0)
            if budget.reserve(bytes) {
                reserved += bytes
                rgb.append(contentsOf: newRGB)
                if let newFlow { flow.append(contentsOf: newFlow) }
                frames += count
                return
            }
            try startSpilling()
        }
        try spill!.rgb.write(contentsOf: Data(buffer: newRGB))
        if let newFlow { try spill!.flow?.write(contentsOf: Data(buffer: newFlow)) }
        frames += count
    }

    /// Moves what memory holds to the files and writes there from now on.
    private func startSpilling() throws {
        let stem = ".spill-part\(part)-\(UUID().uuidString)"
        let urls = [spillFolder.appendingPathComponent(stem + ".rgb")] + (flowFrameBytes > 0 ? [spillFolder.appendingPathComponent(stem + ".flow")] : [])
        var handles: [FileHandle] = []
        for url in urls {
            guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = FileHandle(forUpdatingAtPath: url.path) else {
                throw PrepareError("\(url.path): cannot create a file for a long video's frames")
            }
            handles.append(h)
        }
        spill = (handles[0], handles.count > 1 ? handles[1] : nil, urls)
        try spill!.rgb.write(contentsOf: Data(rgb))
        if flowFrameBytes > 0 { try spill!.flow?.write(contentsOf: Data(flow)) }
        rgb = []; flow = []
        budget.release(reserved)
        reserved = 0
    }

    /// Hands the frames back in order, at most `window` at a time: rgb (n, H, W, 3), flow (n, H, W, 2) or nil.
    func forEachWindow(of window: Int, _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>?, Int) throws -> Void) throws {
        guard let spill else {
            try rgb.withUnsafeBufferPointer { r in
                try flow.withUnsafeBufferPointer { f in
                    var start = 0
                    while start < frames {
                        let n = min(window, frames - start)
                        let rgbPart = UnsafeBufferPointer(rebasing: r[(start * rgbFrameBytes)..<((start + n) * rgbFrameBytes)])
                        let flowPart = flowFrameBytes > 0 ? UnsafeBufferPointer(rebasing: f[(start * flowFrameBytes)..<((start + n) * flowFrameBytes)]) : nil
                        try body(rgbPart, flowPart, n)
                        start += n
                    }
                }
            }
            return
        }
        try spill.rgb.seek(toOffset: 0)
        try spill.flow?.seek(toOffset: 0)
        var start = 0
        while start < frames {
            let n = min(window, frames - start)
            func read(_ handle: FileHandle, _ bytes: Int) throws -> Data {
                guard let d = try handle.read(upToCount: bytes), d.count == bytes else {
                    throw PrepareError("\(spill.urls[0].deletingPathExtension().path): a long video's frames came back short from disk")
                }
                return d
            }
            let r = try read(spill.rgb, n * rgbFrameBytes)
            let f = try spill.flow.map { try read($0, n * flowFrameBytes) }
            try r.withUnsafeBytes { rb in
                let rgbPart = rb.bindMemory(to: UInt8.self)
                if let f {
                    try f.withUnsafeBytes { fb in try body(rgbPart, fb.bindMemory(to: UInt8.self), n) }
                } else {
                    try body(rgbPart, nil, n)
                }
            }
            start += n
        }
    }
}

/// A prepared video whose frames a `FrameStore` holds, ready for `ShardWriter.append`.
struct StoredVideo {
    var name: String, source: String, label: Int
    var height: Int, width: Int
    let store: FrameStore
}
