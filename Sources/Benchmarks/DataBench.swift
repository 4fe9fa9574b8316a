import DataHDF5
import Dispatch
import Foundation
import Tensor
import Training
import Video

/// `maclr bench data`: loader throughput (clip pairs/s with and without augmentation) and peak
/// memory, on a dataset larger than memory would need if read whole, at two dataset sizes.
public struct DataBenchmark {
    public var videosSmall = 40, videosLarge = 160
    public var framesPerVideo = 64, size = 112
    public var batchSize = 8, batches = 30, workers = 2
    /// The recipe defaults' clips (8 frames at stride 2) at 96x96, and their augmentation.
    public var sampling = Recipe.defaults.sampling
    public var augmentation = Recipe.defaults.augmentation
    public init() { sampling.height = 96; sampling.width = 96 }

    public struct Row {
        public var videos: Int; public var datasetGiB: Double; public var augmented: Bool; public var pairsPerSecond: Double; public var peakRSSGiB: Double
        /// CPU time (all threads) per batch while the loader ran: on few cores, taken from the step.
        public var cpuMillisecondsPerBatch: Double
    }

    /// This process's user + system CPU seconds so far, all threads.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Writes a dataset of random frames and flow (content does not matter for throughput).
    func makeDataset(_ folder: URL, videos: Int) throws {
        let fm = FileManager.default
        try? fm.removeItem(at: folder)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        var rng = RandomGenerator(seed: 5)
        let perShard = 40
        var manifest = DatasetManifest(preparation: .init(size: "\(size)x\(size)", fps: 25, flowAlgorithm: "tvl1", flowBound: 20, videosPerShard: perShard))
        var names: [String] = []
        let n = framesPerVideo * size * size
        for shard in 0..<((videos + perShard - 1) / perShard) {
            let file = String(format: "shard-%05d.h5", shard)
            let w = try ShardWriter(path: folder.appendingPathComponent(file).path,
                                    attributes: ShardAttributes(height: size, width: size, fps: 25, flowAlgorithm: "tvl1", flowBound: 20))
            for v in (shard * perShard)..<min(videos, (shard + 1) * perShard) {
                var rgb = [UInt8](repeating: 0, count: n * 3), flow = [UInt8](repeating: 128, count: n * 2)
                for i in stride(from: 0, to: rgb.count, by: 8) { let r = rng.next(); for k in 0..<min(8, rgb.count - i) { rgb[i + k] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(k))) } }
                for i in stride(from: 0, to: flow.count, by: 97) { flow[i] = UInt8(truncatingIfNeeded: rng.next()) }
                names.append("v\(v)")
                try w.append(PreparedVideo(name: names.last!, source: "random", label: v % 10, frames: framesPerVideo, height: size, width: size, rgb: rgb, flow: flow))
            }
            try w.finish()
            // Throwaway data for a throughput figure: no checksum (hashing would add a full read).
            let path = folder.appendingPathComponent(file).path
            manifest.shards.append(.init(file: file, videos: w.videoCount, frames: w.frameCount,
                                         bytes: (try fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0, checksum: "not-computed"))
        }
        manifest.classes = (0..<10).map(String.init)
        manifest.splits = ["train": names]
        manifest.complete = true
        try manifest.save(to: folder)
    }

    static func rssGiB() -> Double {
        // current resident set from /proc (getrusage's maxrss only ever grows)
        guard let f = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(f) }
        var size = 0, resident = 0
        withUnsafeMutablePointer(to: &size) { s in withUnsafeMutablePointer(to: &resident) { r in _ = withVaList([s, r]) { vfscanf(f, "%ld %ld", $0) } } }
        return Double(resident) * Double(sysconf(Int32(_SC_PAGESIZE))) / Double(1 << 30)
    }

    /// One clip read as the loader reads it: RGB and flow of `frames` frames at `stride`.
    public struct ClipRead: Codable { public var shard: String, video: Int, start: Int, row: Int, frames: Int, stride: Int }

    /// Clips/s of raw clip reads (RGB + flow, no augmentation) on one thread, for each way of
    /// reading frames at a stride, over the same `count` random clips; and the clips themselves,
    /// so another reader (h5py) can time the same ones.
    public func accessPatterns(_ ds: ShardDataset, count: Int) throws -> (rates: [(ShardReader.ReadPattern, Double)], clips: [ClipRead]) {
        var rng = RandomGenerator(seed: 9)
        let span = (sampling.frames - 1) * sampling.stride + 1
        let clips = (0..<count).map { _ -> ClipRead in
            let e = ds.entries[Int(rng.next() % UInt64(ds.entries.count))]
            let start = Int(rng.next() % UInt64(max(1, e.length - span + 1)))
            return ClipRead(shard: ds.manifest.shards[e.shard].file, video: e.video, start: start,
                            row: ds.shards[e.shard].videos[e.video].start + start, frames: sampling.frames, stride: sampling.stride)
        }
        let readers = clips.map { c in ds.shards[ds.manifest.shards.firstIndex { $0.file == c.shard }!] }
        var rates: [(ShardReader.ReadPattern, Double)] = []
        // the loader's way: into buffers reused from clip to clip
        var rgb: [UInt8] = [], flow: [UInt8] = [], spanBuffer: [UInt8] = []
        let loaderPattern = ds.shards.first?.readPattern ?? .directChunk
        for pattern in ShardReader.ReadPattern.allCases {
            for r in ds.shards { r.readPattern = pattern }
            let begin = DispatchTime.now().uptimeNanoseconds
            for (c, r) in zip(clips, readers) {
                try r.readRGB(video: c.video, first: c.start, count: c.frames, step: c.stride, into: &rgb, span: &spanBuffer)
                try r.readFlow(video: c.video, first: c.start, count: c.frames, step: c.stride, into: &flow, span: &spanBuffer)
            }
            rates.append((pattern, Double(count) / (Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)))
        }
        for r in ds.shards { r.readPattern = loaderPattern }
        return (rates, clips)
    }

    public struct Result {
        public var rows: [Row] = []
        /// Raw clip reads per second on one thread, ours by pattern, and h5py's when it ran (h5py
        /// also times settings we have no pattern for: those rows have no figure of ours).
        public var patterns: [(name: String, ours: Double?, h5py: Double?)] = []
    }

    /// Runs everything; `python` (with h5py) times the same clip reads with `script`.
    public func run(scratch: URL, python: String? = nil, script: String = "benchmarks/h5py_clips.py", log: (String) -> Void) throws -> Result {
        var result = Result()
        var rows: [Row] = []
        for videos in [videosSmall, videosLarge] {
            let folder = scratch.appendingPathComponent("bench-data-\(videos)")
            log("writing a dataset of \(videos) videos x \(framesPerVideo) frames \(size)x\(size) ...\n")
            try makeDataset(folder, videos: videos)
            let bytes = try FileManager.default.contentsOfDirectory(atPath: folder.path).reduce(0) {
                $0 + ((try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent($1).path)[.size] as? Int) ?? 0)
            }
            let ds = try ShardDataset(folder: folder)
            if videos == videosSmall {
                let (rates, clips) = try accessPatterns(ds, count: 200)
                var h5py: [String: Double] = [:]
                if let python {
                    let list = scratch.appendingPathComponent("bench-data-clips-\(getpid()).json")
                    try JSONEncoder().encode(clips).write(to: list)
                    defer { try? FileManager.default.removeItem(at: list) }
                    let figures = runPythonBenchmark(python: python, arguments: [script, folder.path, list.path], tuned: false)
                    for (k, v) in figures ?? [:] { if let rate = v as? Double { h5py[k] = rate } }
                    if figures == nil { log("(h5py did not run: \(python) \(script))\n") }
                }
                result.patterns = rates.map { (name: $0.0.rawValue, ours: $0.1, h5py: h5py[$0.0.rawValue]) }
                let ours = Set(rates.map { $0.0.rawValue })
                result.patterns += h5py.keys.filter { !ours.contains($0) }.sorted().map { (name: $0, ours: nil, h5py: h5py[$0]) }
            }
            for augmented in [false, true] {
                let s = ClipSampler(dataset: ds, indices: try ds.indices(split: "train"), sampling: sampling,
                                    augmentation: augmented ? augmentation : .none, seed: 1, batchSize: batchSize, withMotion: true)
                let loader = StreamingLoader(sampler: s, workers: workers, depth: 4)
                _ = try loader.next()
                var peak = Self.rssGiB()
                let start = DispatchTime.now().uptimeNanoseconds, cpuStart = Self.cpuSeconds()
                for i in 0..<batches {
                    _ = try loader.next()
                    peak = max(peak, Self.rssGiB())
                    let el = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    log(String(format: "\r  %d videos, augmentation %@: batch %d/%d, %.1f clip pairs/s, %.0fs left   ", videos, augmented ? "on " : "off",
                               i + 1, batches, Double((i + 1) * batchSize) / el, el / Double(i + 1) * Double(batches - i - 1)))
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, cpu = Self.cpuSeconds() - cpuStart
                loader.stop()
                rows.append(Row(videos: videos, datasetGiB: Double(bytes) / Double(1 << 30), augmented: augmented,
                                pairsPerSecond: Double(batches * batchSize) / seconds, peakRSSGiB: peak,
                                cpuMillisecondsPerBatch: cpu / Double(batches) * 1e3))
                log("\n")
            }
            try? FileManager.default.removeItem(at: folder)
        }
        result.rows = rows
        return result
    }
}

/// `maclr bench flow`: TV-L1 on frame pairs from a safetensors file (i0, i1: (N, H, W) float
/// grayscale 0...255), timed; flows written to a safetensors file (u, v: (N, H, W)).
public func benchmarkFlow(pairs: URL, output: URL, threads: Int, log: (String) -> Void) throws -> (seconds: Double, pairs: Int) {
    let (t, _) = try SafeTensors.read(pairs)
    guard let i0 = t["i0"], let i1 = t["i1"], i0.shape == i1.shape, i0.rank == 3 else {
        throw BenchmarkError("\(pairs.path): needs tensors i0 and i1 of the same shape (N, H, W)")
    }
    let (n, h, w) = (i0.shape[0], i0.shape[1], i0.shape[2])
    let frames0 = (0..<n).map { k in GrayImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: i0.data + k * h * w, count: h * w))) }
    let frames1 = (0..<n).map { k in GrayImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: i1.data + k * h * w, count: h * w))) }
    Engine.options.threads = threads
    var flows = [FlowField](repeating: FlowField(width: w, height: h), count: n)
    let start = DispatchTime.now().uptimeNanoseconds
    flows.withUnsafeMutableBufferPointer { buf in
        let base = buf.baseAddress!
        parallelDynamic(n, threads: threads) { k in base[k] = TVL1().flow(frames0[k], frames1[k]) }
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let u = Tensor(shape: [n, h, w], data: flows.flatMap(\.u)), v = Tensor(shape: [n, h, w], data: flows.flatMap(\.v))
    try SafeTensors.write(["u": .float32(u), "v": .float32(v)], to: output)
    log(String(format: "TV-L1: %d pairs of %dx%d in %.2f s (%.1f pairs/s, %d threads)\n", n, w, h, seconds, Double(n) / seconds, threads))
    return (seconds, n)
}

/// A benchmark's input is not what it needs: names the file or value at fault.
public struct BenchmarkError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
