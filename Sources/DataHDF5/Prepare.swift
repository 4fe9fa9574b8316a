import Dispatch
import Foundation
import LongWork
import SwiftCSV
import Tensor
import Video

/// `maclr prepare`: videos -> a dataset folder of HDF5 shards plus manifest.json.
///
/// Videos are sorted and cut into shards of `videosPerShard` in that order, so the same input
/// always gives the same shards. A shard is written under a temporary name and renamed, and
/// `.prepare-state.json` records each finished shard: a rerun after a kill skips finished
/// shards and redoes the rest, and the result equals an uninterrupted run.
public struct Preparation {
    public struct Input: Sendable, Equatable {
        public var path: String
        public var label: String?
        /// The splits the video belongs to (an official layout lists a video in several:
        /// train1, test2, ...); none for a video of no split.
        public var splits: [String]
        public init(path: String, label: String?, splits: [String]) { self.path = path; self.label = label; self.splits = splits }
    }

    /// Every frame is resized to this (W, H): a shard holds one frame size. The C3D / R(2+1)D
    /// convention: short side S -> S x round(4S/3), e.g. 128 x 171.
    public var width = 64, height = 64
    public var fps: Double? = nil
    public var flow = true
    public var flowBound: Double = 20
    public var videosPerShard = 64
    public var workers = 2
    public var tvl1 = TVL1()
    /// Bytes of prepared frames and flow the videos of a shard may hold in memory until it is
    /// written; beyond it they wait on disk beside the shard, so a long video does not need
    /// memory for its length.
    public var frameMemoryBytes = 24 << 20
    /// This process's part of a preparation split over `parts` processes (0-based): shard k is
    /// written by part k % parts; each part keeps its own progress, and the part that finds
    /// every other one finished writes the manifest.
    public var part = 0, parts = 1
    /// Where this preparation's time went, summed over its threads.
    public let times = PreparationTimes()

    public init() {}

    /// (W, H) for a short side of `s` with a 4:3 frame, both even.
    public static func landscape(shortSide s: Int) -> (width: Int, height: Int) {
        (Int((Double(s) * 4 / 3 / 2).rounded()) * 2, s)
    }

    static let videoExtensions: Set<String> = ["mp4", "avi", "mkv", "webm", "mov", "m4v", "mpg", "mpeg", "flv", "wmv", "ogv", "3gp", "ts"]

    /// Inputs from a CSV (path,label[,split], header optional), a folder of class sub-folders,
    /// or a folder of plain files (unlabelled).
    public static func discover(_ source: URL) throws -> [Input] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: source.path, isDirectory: &isDir) else { throw PrepareError("\(source.path): no such file or folder") }
        if !isDir.boolValue {
            let text = try BoundedInput.text(source, what: "list of videos")
            // RFC 4180: quoted fields may hold commas, quotes ("") and line breaks.
            let table: CSV<Enumerated>
            do { table = try CSV<Enumerated>(string: text, delimiter: .comma, loadColumns: false) } catch {
                throw PrepareError("\(source.path): not a CSV of path,label[,split] (\(error))")
            }
            var inputs: [Input] = []
            let base = source.deletingLastPathComponent()
            // The first line is a header only when it names the path column.
            let lines = (table.header.first?.lowercased() == "path" ? [] : [table.header]) + table.rows
            let firstLine = table.header.first?.lowercased() == "path" ? 2 : 1
            for (n, raw) in lines.enumerated() where !(raw.count == 1 && raw[0].trimmingCharacters(in: .whitespaces).isEmpty) {
                let fields = raw.map { $0.trimmingCharacters(in: .whitespaces) }
                guard let p = fields.first, !p.isEmpty else { throw PrepareError("\(source.path):\(n + firstLine): empty path") }
                let path = p.hasPrefix("/") ? p : base.appendingPathComponent(p).path
                inputs.append(Input(path: path, label: fields.count > 1 && !fields[1].isEmpty ? fields[1] : nil,
                                    splits: fields.count > 2 && !fields[2].isEmpty ? [fields[2]] : []))
            }
            return inputs
        }
        let entries = try fm.contentsOfDirectory(atPath: source.path).sorted()
        let subfolders = entries.filter { var d: ObjCBool = false; return fm.fileExists(atPath: source.appendingPathComponent($0).path, isDirectory: &d) && d.boolValue }
        func videos(in dir: URL) throws -> [String] {
            try fm.contentsOfDirectory(atPath: dir.path).sorted()
                .filter { videoExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .map { dir.appendingPathComponent($0).path }
        }
        if !subfolders.isEmpty {
            return try subfolders.flatMap { c in try videos(in: source.appendingPathComponent(c)).map { Input(path: $0, label: c, splits: []) } }
        }
        return try videos(in: source).map { Input(path: $0, label: nil, splits: []) }
    }

    /// `maclr prepare INPUT OUTPUT`: reads the inputs in `layout` (for `.files` a classes.txt
    /// beside a CSV names its integer labels; `maclr synth` writes one; an official layout's split
    /// files are read from `splitFiles` or where the dataset keeps them), reports each split's
    /// counts and what is missing, and runs (or resumes) the preparation. Returns the dataset's
    /// manifest, or nil when this is one part of a split preparation and other parts are still
    /// running (the last one to finish writes the manifest).
    public func run(input: String, output: String, layout: DatasetLayout = .files, splitFiles: String? = nil,
                    log: @escaping (String) -> Void) throws -> DatasetManifest? {
        let listing = try Self.list(input: input, layout: layout, splitFiles: splitFiles, log: log)
        return try run(inputs: listing.inputs, output: URL(fileURLWithPath: output), classNames: listing.classes, log: log)
    }

    /// The videos `run(input:...)` would prepare, their classes and splits, read and checked
    /// (`maclr prepare --check`): an official layout's counts and missing videos go to `log`.
    public static func list(input: String, layout: DatasetLayout = .files, splitFiles: String? = nil,
                            log: (String) -> Void) throws -> LayoutListing {
        let source = URL(fileURLWithPath: input)
        var listing = try layout.read(videos: source, splitFiles: splitFiles.map { URL(fileURLWithPath: $0) })
        if layout == .files {
            let namesFile = source.deletingLastPathComponent().appendingPathComponent("classes.txt")
            if FileManager.default.fileExists(atPath: namesFile.path) {
                listing.classes = try BoundedInput.text(namesFile, what: "class list").split(whereSeparator: \.isNewline).map(String.init)
            }
        } else {
            for line in listing.report { log(line + "\n") }
        }
        guard !listing.inputs.isEmpty else { throw PrepareError("\(input): none of the listed videos has a file") }
        return listing
    }

    /// Class names and each input's index: integer labels are used as given (named by
    /// `classNames`, e.g. a classes.txt beside the CSV, when it has enough lines); names take the
    /// order of `classNames` when it lists them all (an official layout's class list), else sorted.
    static func labelIndex(_ inputs: [Input], classNames: [String] = []) -> (classes: [String], index: [Int]) {
        let labels = inputs.compactMap(\.label)
        if !labels.isEmpty, labels.allSatisfy({ Int($0) != nil }) {
            let maxLabel = labels.compactMap { Int($0) }.max() ?? -1
            let names = classNames.count > maxLabel ? Array(classNames.prefix(maxLabel + 1)) : (0...max(maxLabel, 0)).map(String.init)
            return (names, inputs.map { $0.label.flatMap { Int($0) } ?? -1 })
        }
        // names in the given order (an official layout's class list), else sorted
        let classes = !classNames.isEmpty && Set(labels).isSubset(of: classNames) ? classNames : Array(Set(labels)).sorted()
        let lookup = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        return (classes, inputs.map { $0.label.flatMap { lookup[$0] } ?? -1 })
    }

    /// A video's id: its path relative to the common input folder, without extension.
    static func videoName(_ path: String, root: String) -> String {
        var p = path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
        if p.hasPrefix("/") { p.removeFirst() }
        return (p as NSString).deletingPathExtension
    }

    var settings: DatasetManifest.Preparation {
        return .init(size: "\(width)x\(height)", fps: fps, flowAlgorithm: flow ? "tvl1" : "none", flowBound: flowBound, videosPerShard: videosPerShard)
    }

    /// Progress journal: finished shards and the videos that failed in them.
    struct State: Codable {
        var settings: DatasetManifest.Preparation
        var inputsChecksum: String
        var finished: [Int: DatasetManifest.Shard?] = [:]   // shard index -> entry (nil: every video failed)
        var failed: [Int: [DatasetManifest.FailedVideo]] = [:]
    }

    /// Frames decoded, their flow computed and stored per window: what one video holds in
    /// memory besides its store, whatever its length.
    static let windowFrames = 32

    /// Decodes one video and computes its flow, quantised, window by window into a store that
    /// spills to `output` once `frameMemory` is spent, so memory does not grow with the video.
    func prepareVideo(_ input: Input, name: String, label: Int, output: URL, frameMemory: FrameMemoryBudget) throws -> (StoredVideo, [String], Double) {
        var clock = DispatchTime.now().uptimeNanoseconds
        func lap(_ phase: PreparationTimes.Phase) {
            let now = DispatchTime.now().uptimeNanoseconds
            times.add(phase, Double(now - clock) / 1e9)
            clock = now
        }
        let store = FrameStore(rgbFrameBytes: width * height * 3, flowFrameBytes: flow ? width * height * 2 : 0,
                               budget: frameMemory, spillFolder: output, part: part)
        let frameBytes = width * height * 3, n = width * height
        // the window's frames (k, H, W, 3) and their luma; with flow, the last frame stays for the next window's first pair
        var window: [UInt8] = []
        window.reserveCapacity((Self.windowFrames + 1) * frameBytes)
        var grays: [GrayImage] = []
        let bound = Float(flowBound)
        let times = self.times
        func storeWindow(final: Bool) throws {
            let frames = window.count / frameBytes
            guard flow else {
                try window.withUnsafeBufferPointer { try store.append(rgb: $0, flow: nil, frames: frames) }
                window.removeAll(keepingCapacity: true)
                return
            }
            let kept = final ? frames : frames - 1
            guard kept > 0 else { return }
            // TV-L1 runs its frame pairs on several threads: its time is the sum of theirs, by level
            let fields = Motion.flows(grays, tvl1: tvl1) { w, h, seconds in times.addLevel(width: w, height: h, seconds) }
            clock = DispatchTime.now().uptimeNanoseconds
            var q = [UInt8](repeating: 0, count: kept * n * 2)
            for f in 0..<kept {
                let field = fields[f]
                for i in 0..<n {
                    q[(f * n + i) * 2] = Motion.quantize(field.u[i], bound: bound)
                    q[(f * n + i) * 2 + 1] = Motion.quantize(field.v[i], bound: bound)
                }
            }
            lap(.quantize)
            try window.withUnsafeBufferPointer { rgb in
                try q.withUnsafeBufferPointer { try store.append(rgb: UnsafeBufferPointer(rebasing: rgb[0..<(kept * frameBytes)]), flow: $0, frames: kept) }
            }
            window.removeFirst(kept * frameBytes)
            grays.removeFirst(kept)
            lap(.write)
        }
        let decoded = try VideoReader(path: input.path).decode(size: .fixed(width: width, height: height), fps: fps) { frame in
            lap(.decode)
            window.append(contentsOf: frame)
            if flow {
                grays.append(GrayImage(rgb: frame, width: width, height: height))
                lap(.gray)
            }
            if window.count / frameBytes == Self.windowFrames + (flow ? 1 : 0) { try storeWindow(final: false) }
            clock = DispatchTime.now().uptimeNanoseconds
        }
        lap(.decode)
        try storeWindow(final: true)
        return (StoredVideo(name: name, source: input.path, label: label, height: decoded.height, width: decoded.width, store: store),
                decoded.warnings, decoded.fps)
    }

    /// Where part `p` of `parts` records its finished shards.
    func stateURL(_ output: URL, part p: Int) -> URL {
        output.appendingPathComponent(parts == 1 ? ".prepare-state.json" : ".prepare-state.part-\(p + 1)-of-\(parts).json")
    }

    /// Runs (or resumes) preparation of `inputs` into `output`. `log` gets progress lines.
    /// Returns the dataset's manifest, or nil when this part is done and others are still
    /// preparing theirs (the last to finish writes it).
    @discardableResult
    public func run(inputs rawInputs: [Input], output: URL, classNames: [String] = [], log: @escaping (String) -> Void) throws -> DatasetManifest? {
        guard !rawInputs.isEmpty else { throw PrepareError("no videos to prepare") }
        let fm = FileManager.default
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        let inputs = rawInputs.sorted { $0.path < $1.path }
        let (classes, labels) = Self.labelIndex(inputs, classNames: classNames)
        let root = commonFolder(inputs.map(\.path))
        let names = inputs.map { Self.videoName($0.path, root: root) }
        let inputsText = inputs.map { $0.path + "|" + ($0.label ?? "") + "|" + $0.splits.joined(separator: ",") }.joined()
        let inputsChecksum = String(format: "%016llx", Array(inputsText.utf8).withUnsafeBytes { fnv1a64($0) })

        let stateURL = stateURL(output, part: part)
        var state = State(settings: settings, inputsChecksum: inputsChecksum)
        if let saved = try loadState(stateURL, checksum: inputsChecksum, output: output) {
            state = saved
            if !state.finished.isEmpty { log("resuming: \(state.finished.count) shard(s) already finished\n") }
        } else if fm.fileExists(atPath: output.appendingPathComponent("manifest.json").path) {
            let m = try DatasetManifest.load(from: output)
            if m.complete && m.preparation == settings { log("\(output.path): already prepared\n"); return m }
            throw PrepareError("\(output.path): holds a dataset prepared with other settings; use a new folder")
        }
        FrameStore.removeLeftovers(in: output, part: part)
        let frameMemory = FrameMemoryBudget(limit: frameMemoryBytes)
        let shardCount = (inputs.count + videosPerShard - 1) / videosPerShard
        let mine = (0..<shardCount).filter { $0 % parts == part }
        let myVideos = mine.reduce(0) { $0 + min(videosPerShard, inputs.count - $1 * videosPerShard) }
        let start = DispatchTime.now().uptimeNanoseconds
        var doneVideos = state.finished.keys.reduce(0) { $0 + min(videosPerShard, inputs.count - $1 * videosPerShard) }
        let resumedVideos = doneVideos
        var doneFrames = 0
        if parts > 1 { log("part \(part + 1) of \(parts): \(mine.count) of \(shardCount) shards\n") }

        for shard in mine where state.finished[shard] == nil {
            let range = (shard * videosPerShard)..<min(inputs.count, (shard + 1) * videosPerShard)
            // Decode and compute flow for the shard's videos on `workers` threads; write in order.
            var results = [Result<(StoredVideo, [String], Double), Error>?](repeating: nil, count: range.count)
            let lock = NSLock()
            var finishedInShard = 0
            parallelDynamic(range.count, threads: workers) { k in
                    let i = range.lowerBound + k
                    // after SIGTERM or SIGINT the shard's remaining videos are not started: it is redone on the rerun
                    let r = Result { () throws -> (StoredVideo, [String], Double) in
                        try StopRequests.shared.check("")
                        return try prepareVideo(inputs[i], name: names[i], label: labels[i], output: output, frameMemory: frameMemory)
                    }
                    lock.lock()
                    results[k] = r
                    finishedInShard += 1
                    if case .success(let (v, _, _)) = r { doneFrames += v.store.frames }
                    let videosNow = doneVideos + finishedInShard
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    let rate = Double(videosNow - resumedVideos) / max(elapsed, 1e-9)
                    let left = rate > 0 ? Double(myVideos - videosNow) / rate : 0
                    log(String(format: "\rprepare: %d/%d videos, %.2f videos/s, %.0f frames/s, %@ left   ", videosNow, myVideos,
                               rate, Double(doneFrames) / max(elapsed, 1e-9), formatDuration(left)))
                    lock.unlock()
            }
            let finishedShards = state.finished.count
            try StopRequests.shared.check("\(finishedShards) of \(mine.count) shards complete in \(output.path), shard \(shard) left to be redone; rerun the same command to continue")
            doneVideos += range.count
            var failed: [DatasetManifest.FailedVideo] = []
            var good: [StoredVideo] = []
            var sourceFPS: [String: Double] = [:]
            for (k, r) in results.enumerated() {
                switch r! {
                case .success(let (v, warnings, rate)):
                    good.append(v)
                    sourceFPS[v.source] = rate
                    for w in warnings { log("\nwarning: \(inputs[range.lowerBound + k].path): \(w)\n") }
                case .failure(let e):
                    failed.append(.init(source: inputs[range.lowerBound + k].path, reason: "\(e)"))
                    log("\nskipped: \(e)\n")
                }
            }
            var entry: DatasetManifest.Shard? = nil
            if let first = good.first {
                let file = String(format: "shard-%05d.h5", shard)
                let path = output.appendingPathComponent(file).path
                // fps: the target rate, or the first video's own when not resampling
                let writer = try ShardWriter(path: path, attributes: ShardAttributes(
                    height: first.height, width: first.width, fps: fps ?? sourceFPS[first.source] ?? 0,
                    flowAlgorithm: flow ? "tvl1" : "none", flowBound: flowBound))
                let writeStart = DispatchTime.now().uptimeNanoseconds
                for v in good { try writer.append(v) }
                try writer.finish()
                times.add(.write, Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9 - writer.motionScoreSeconds)
                times.add(.motionScores, writer.motionScoreSeconds)
                entry = try .init(measuring: file, in: output, videos: good.count, frames: writer.frameCount)
            }
            results = []; good = []   // the stores go: their memory and files with them
            state.finished[shard] = .some(entry)
            state.failed[shard] = failed
            let encoder = JSONEncoder(); encoder.outputFormatting = [.sortedKeys]
            try DurableFiles.write(try encoder.encode(state), to: stateURL)
            try StopRequests.shared.check("\(state.finished.count) of \(mine.count) shards complete in \(output.path); rerun the same command to continue")
        }
        log("\n")
        if state.finished.isEmpty { try DurableFiles.write(try JSONEncoder().encode(state), to: stateURL) }

        // every part's progress: the manifest once all have finished
        var states = [state]
        for p in 0..<parts where p != part {
            guard let other = try loadState(self.stateURL(output, part: p), checksum: inputsChecksum, output: output),
                  (0..<shardCount).filter({ $0 % parts == p }).allSatisfy({ other.finished[$0] != nil }) else {
                log("part \(part + 1) of \(parts) finished; the manifest is written when every part has\n")
                return nil
            }
            states.append(other)
        }
        state.finished = states.reduce(into: [:]) { $0.merge($1.finished) { a, _ in a } }
        state.failed = states.reduce(into: [:]) { $0.merge($1.failed) { a, _ in a } }

        var manifest = DatasetManifest(preparation: settings)
        manifest.shards = (0..<shardCount).compactMap { state.finished[$0] ?? nil }
        manifest.failed = (0..<shardCount).flatMap { state.failed[$0] ?? [] }
        manifest.classes = classes
        let failedSources = Set(manifest.failed.map(\.source))
        for (i, input) in inputs.enumerated() where !failedSources.contains(input.path) {
            for split in input.splits { manifest.splits[split, default: []].append(names[i]) }
        }
        manifest.complete = true
        try manifest.save(to: output)
        for p in 0..<parts { try? fm.removeItem(at: self.stateURL(output, part: p)) }
        return manifest
    }

    /// A part's saved progress, checked against these settings and videos; nil if none.
    func loadState(_ url: URL, checksum: String, output: URL) throws -> State? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        guard let saved = try? JSONDecoder().decode(State.self, from: data) else {
            throw PrepareError("\(url.path): unreadable progress file; delete it to redo that part's shards")
        }
        guard saved.settings == settings, saved.inputsChecksum == checksum else {
            throw PrepareError("\(output.path): was being prepared with other settings or videos; use a new folder or delete it")
        }
        return saved
    }
}

public struct PrepareError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The deepest folder containing every path.
func commonFolder(_ paths: [String]) -> String {
    guard var parts = paths.first.map({ ($0 as NSString).deletingLastPathComponent.split(separator: "/").map(String.init) }) else { return "" }
    for p in paths.dropFirst() {
        let q = (p as NSString).deletingLastPathComponent.split(separator: "/").map(String.init)
        var n = 0
        while n < min(parts.count, q.count) && parts[n] == q[n] { n += 1 }
        parts = Array(parts.prefix(n))
    }
    return "/" + parts.joined(separator: "/")
}

/// Where a preparation's time goes, in seconds summed over its threads: decoding (with the resize
/// FFmpeg does), luma, TV-L1 (and each pyramid level of it), quantising the flow, each frame's
/// motion score, and the HDF5 writes.
public final class PreparationTimes: @unchecked Sendable {
    public enum Phase: String, CaseIterable, Sendable {
        case decode = "decode and resize", gray = "luma", flow = "TV-L1", quantize = "quantise flow"
        case motionScores = "motion scores", write = "HDF5 writes"
    }
    private let lock = NSLock()
    private var seconds: [Phase: Double] = [:]
    /// TV-L1's time per pyramid level, by its frame size "WxH".
    private var levels: [String: (pixels: Int, seconds: Double)] = [:]

    public init() {}

    func add(_ phase: Phase, _ s: Double) { lock.lock(); seconds[phase, default: 0] += s; lock.unlock() }

    func addLevel(width: Int, height: Int, _ s: Double) {
        lock.lock(); levels["\(width)x\(height)", default: (width * height, 0)].seconds += s; seconds[.flow, default: 0] += s; lock.unlock()
    }

    /// One line: each phase's seconds and share, TV-L1's split by level (largest first); nil when nothing was timed.
    public var summary: String? {
        lock.lock(); defer { lock.unlock() }
        let total = seconds.values.reduce(0, +)
        guard total > 0 else { return nil }
        func share(_ s: Double) -> String { String(format: "%.1f s (%.0f %%)", s, 100 * s / total) }
        var parts = Phase.allCases.compactMap { p in seconds[p].map { "\(p.rawValue) \(share($0))" } }
        let flow = seconds[.flow] ?? 0
        if flow > 0, let i = parts.firstIndex(where: { $0.hasPrefix(Phase.flow.rawValue) }) {
            let byLevel = levels.sorted { $0.value.pixels > $1.value.pixels }
                .map { String(format: "%@ %.0f %%", $0.key, 100 * $0.value.seconds / flow) }
            parts[i] += " [levels: " + byLevel.joined(separator: ", ") + "]"
        }
        return "time (summed over threads): " + parts.joined(separator: ", ")
    }
}
