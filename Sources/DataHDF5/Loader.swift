import Dispatch
import Foundation
import Tensor
import Video

/// An opened dataset folder: the manifest and every shard's video table (frames stay on disk).
public final class ShardDataset: @unchecked Sendable {
    public struct Entry: Sendable {
        public var shard: Int, video: Int
        public var name: String, label: Int, length: Int
    }
    public let folder: URL
    public let manifest: DatasetManifest
    public let shards: [ShardReader]
    public let entries: [Entry]

    public init(folder: URL) throws {
        self.folder = folder
        manifest = try DatasetManifest.load(from: folder)
        guard manifest.complete else { throw HDF5Error("\(folder.path): preparation did not finish (rerun maclr prepare)") }
        try ShardVerification(folder: folder).verify(manifest.shards)
        shards = try manifest.shards.map { try ShardReader(path: folder.appendingPathComponent($0.file).path) }
        entries = shards.enumerated().flatMap { s, r in
            r.videos.enumerated().map { Entry(shard: s, video: $0.offset, name: $0.element.name, label: $0.element.label, length: $0.element.length) }
        }
    }

    public var height: Int { shards.first?.attributes.height ?? 0 }
    public var width: Int { shards.first?.attributes.width ?? 0 }
    public var hasFlow: Bool { shards.first?.hasFlow ?? false }
    public var flowBound: Float { Float(shards.first?.attributes.flowBound ?? 20) }

    /// Indices of the entries in `split` (every entry when nil).
    public func indices(split: String?) throws -> [Int] {
        guard let split else { return Array(entries.indices) }
        guard let names = manifest.splits[split] else {
            throw HDF5Error("\(folder.path): no split '\(split)' (have: \(manifest.splits.keys.sorted().joined(separator: ", ")))")
        }
        let wanted = Set(names)
        return entries.indices.filter { wanted.contains(entries[$0].name) }
    }

    func fps(of e: Entry) -> Double {
        let f = shards[e.shard].attributes.fps
        return f > 0 ? f : 25
    }
}

/// What the Motion pathway sees, computed on the fly from the stored flow (or frames).
public enum MotionRepresentation: String, Codable, Sendable, CaseIterable {
    /// (u, v) in units of the flow bound: 2 channels.
    case flow
    /// |(u, v)| in units of the bound: 1 channel.
    case magnitude
    /// MCL's motion boundaries (Prewitt magnitude of u plus of v), in units of the bound: 1 channel.
    case motionBoundaries = "motion_boundaries"
    /// RGB difference of consecutive frames (flow-free baseline), in 0...1 units: 3 channels.
    case frameDifference = "frame_difference"

    public var channels: Int {
        switch self { case .flow: return 2; case .magnitude, .motionBoundaries: return 1; case .frameDifference: return 3 }
    }
}

/// How clips are cut and paired.
/// What a clip is; a recipe's `data.*` keys set every field (the schema holds the defaults).
public struct ClipSampling: Codable, Equatable, Sendable {
    public var motion: MotionRepresentation
    public var frames: Int
    public var stride: Int
    public var height: Int, width: Int
    /// Two clips of one video, their starts this many seconds apart (MaCLR: 0.5 s to 10 s).
    public var positiveGap: ClosedRange<Double>
    public init(frames: Int, stride: Int, height: Int, width: Int, positiveGap: ClosedRange<Double>, motion: MotionRepresentation) {
        self.frames = frames; self.stride = stride; self.height = height; self.width = width
        self.positiveGap = positiveGap; self.motion = motion
    }
}

/// A batch of positive pairs: two clips (a, b) of each of N videos.
/// rgb: (N, T, H, W, 3) normalised with the Kinetics mean and std; motion: the Motion pathway's
/// input (N, T, H, W, C) of `ClipSampling.motion` (flow: pixels / bound, after the crop's
/// rescaling), nil when the recipe has no Motion pathway.
public struct ClipBatch: @unchecked Sendable {
    public var rgbA: Tensor, rgbB: Tensor
    public var motionA: Tensor?, motionB: Tensor?
    /// MCL's alignment target: the motion-boundary magnitude of clip A's flow, cropped and
    /// flipped as its frames (N, T, H, W); nil unless the sampler makes it.
    public var alignmentTarget: Tensor?
    public var labels: [Int]
    public var videos: [Int]
}

/// Where a loader is: epoch and batch within it. Checkpoints store it to resume.
public struct LoaderPosition: Codable, Equatable, Sendable {
    public var epoch = 0, batch = 0
    public init(epoch: Int = 0, batch: Int = 0) { self.epoch = epoch; self.batch = batch }
}

/// Produces the batch at any position deterministically from (seed, epoch, batch), so background
/// threads may finish in any order and a resumed run sees the same batches.
public struct ClipSampler: Sendable {
    public let dataset: ShardDataset
    public let indices: [Int]
    public var sampling: ClipSampling
    public var augmentation: Augmentation
    public var seed: UInt64
    /// Clip pairs per global batch.
    public var batchSize: Int
    /// The rows of every global batch this process makes (data-parallel training); nil: all.
    public var slice: Range<Int>?
    /// Whether batches carry the Motion pathway's input.
    public var withMotion: Bool
    /// Whether batches carry clip A's motion boundaries (MCL's alignment loss; needs flow).
    public var withAlignmentTarget = false
    /// Where an unaugmented clip's square crop sits along the frame's long side: 0 the start,
    /// 0.5 the centre, 1 the end (the test views set it).
    var viewPosition = 0.5

    /// The Kinetics mean and std every RGB input is normalised with.
    public static let mean: [Float] = [0.43216, 0.394666, 0.37645], std: [Float] = [0.22803, 0.22145, 0.216989]

    public init(dataset: ShardDataset, indices: [Int], sampling: ClipSampling, augmentation: Augmentation, seed: UInt64,
                batchSize: Int, withMotion: Bool) {
        self.dataset = dataset; self.indices = indices; self.sampling = sampling; self.augmentation = augmentation
        self.seed = seed; self.batchSize = batchSize
        self.withMotion = withMotion && (dataset.hasFlow || sampling.motion == .frameDifference)
    }

    public var batchesPerEpoch: Int { max(1, indices.count / batchSize) }

    /// The epoch's order of videos: a seeded permutation.
    func order(epoch: Int) -> [Int] {
        var rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var o = indices
        for i in stride(from: o.count - 1, to: 0, by: -1) { o.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return o
    }

    public func batch(at p: LoaderPosition) throws -> ClipBatch {
        let order = order(epoch: p.epoch)
        // each clip pair is a function of its place in the global batch, so a slice of it is
        // exactly those rows of the whole
        let positions = Array(slice ?? 0..<batchSize)
        let picks = positions.map { order[(p.batch * batchSize + $0) % order.count] }
        let n = picks.count, t = sampling.frames, h = sampling.height, w = sampling.width
        let rgbA = Tensor(uninitialized: [n, t, h, w, 3]), rgbB = Tensor(uninitialized: [n, t, h, w, 3])
        let mc = sampling.motion.channels
        let motionA = withMotion ? Tensor(uninitialized: [n, t, h, w, mc]) : nil
        let motionB = withMotion ? Tensor(uninitialized: [n, t, h, w, mc]) : nil
        let target = withAlignmentTarget && dataset.hasFlow ? Tensor(uninitialized: [n, t, h, w]) : nil
        let buffers = ClipBuffers()
        for (i, entryIndex) in picks.enumerated() {
            let position = UInt64(positions[i])
            var rng = RandomGenerator(seed: seed ^ (UInt64(p.epoch) << 40) ^ (UInt64(p.batch) << 16) ^ position &* 0x2545_F491_4F6C_DD1D)
            let e = dataset.entries[entryIndex]
            let (s1, s2) = try pairStarts(e, rng: &rng)
            try clip(e, start: s1, rng: &rng, rgb: rgbA.data + i * t * h * w * 3, motion: motionA.map { $0.data + i * t * h * w * mc },
                     boundaries: target.map { $0.data + i * t * h * w }, buffers: buffers)
            try clip(e, start: s2, rng: &rng, rgb: rgbB.data + i * t * h * w * 3, motion: motionB.map { $0.data + i * t * h * w * mc },
                     buffers: buffers)
        }
        return ClipBatch(rgbA: rgbA, rgbB: rgbB, motionA: motionA, motionB: motionB, alignmentTarget: target,
                         labels: picks.map { dataset.entries[$0].label }, videos: picks)
    }

    /// The test views of entry `index`, without augmentation: `count` evenly spaced clips, each
    /// cut as `crops` squares of the frame's short side along its long side (1: the centre; 3:
    /// start, centre, end, as the field tests): the RGB input (count x crops, T, H, W, 3), clip
    /// by clip, or with `motion` the Motion pathway's input (count x crops, T, H, W, C).
    public func evaluationClips(entry index: Int, count: Int, crops: Int = 1, motion: Bool = false) throws -> Tensor {
        let e = dataset.entries[index]
        let t = sampling.frames, h = sampling.height, w = sampling.width
        let channels = motion ? sampling.motion.channels : 3
        let out = Tensor(uninitialized: [count * crops, t, h, w, channels])
        var rgbScratch = [Float](repeating: 0, count: motion ? t * h * w * 3 : 0)
        let last = max(0, e.length - ((t - 1) * sampling.stride + 1))
        var plain = self
        plain.augmentation = .none
        var rng = RandomGenerator(seed: 0)
        let buffers = ClipBuffers()
        for k in 0..<count {
            let start = count > 1 ? Int((Double(last) * Double(k) / Double(count - 1)).rounded()) : last / 2
            for c in 0..<crops {
                plain.viewPosition = crops > 1 ? Double(c) / Double(crops - 1) : 0.5
                let view = k * crops + c
                if motion {
                    try rgbScratch.withUnsafeMutableBufferPointer { rgb in
                        try plain.clip(e, start: start, rng: &rng, rgb: rgb.baseAddress!, motion: out.data + view * t * h * w * channels, buffers: buffers)
                    }
                } else {
                    try plain.clip(e, start: start, rng: &rng, rgb: out.data + view * t * h * w * 3, motion: nil, buffers: buffers)
                }
            }
        }
        return out
    }

    /// The clip of entry `index` from `start` without augmentation, and its flow's
    /// motion-boundary map when the dataset has flow: (1, T, H, W, 3) and (1, T, H, W).
    public func plainClip(entry index: Int, start: Int) throws -> (rgb: Tensor, boundaries: Tensor?) {
        let e = dataset.entries[index]
        let t = sampling.frames, h = sampling.height, w = sampling.width
        var plain = self
        plain.augmentation = .none
        var rng = RandomGenerator(seed: 0)
        let rgb = Tensor(uninitialized: [1, t, h, w, 3])
        let boundaries = dataset.hasFlow ? Tensor(uninitialized: [1, t, h, w]) : nil
        try plain.clip(e, start: min(max(0, start), max(0, e.length - 1)), rng: &rng, rgb: rgb.data, motion: nil,
                       boundaries: boundaries?.data, buffers: ClipBuffers())
        return (rgb, boundaries)
    }

    /// Start frames of two clips of the same video, their gap drawn uniformly from
    /// `positiveGap` seconds intersected with what the video allows (a gap drawn from the whole
    /// range and then clamped would be the video's longest almost always, so every pair would be
    /// its first and last clip), the first start chosen by motion when MCL sampling is on.
    func pairStarts(_ e: ShardDataset.Entry, rng: inout RandomGenerator) throws -> (Int, Int) {
        let span = (sampling.frames - 1) * sampling.stride + 1
        let last = max(0, e.length - span)
        let fps = dataset.fps(of: e)
        let hi = min(last, Int(sampling.positiveGap.upperBound * fps))
        let lo = min(hi, Int(sampling.positiveGap.lowerBound * fps))
        let gap = lo + Int(rng.next() % UInt64(hi - lo + 1))
        var first = Int(rng.next() % UInt64(last - gap + 1))
        if augmentation.motionTemporalSampling && dataset.hasFlow && last - gap > 0 {
            first = try motionFocusedStart(e, candidates: last - gap + 1, rng: &rng)
        }
        return rng.uniform() < 0.5 ? (first, first + gap) : (first + gap, first)
    }

    /// MCL's temporal sampling: rank candidate starts by the clip's mean motion-boundary magnitude,
    /// and with probability 0.7 take one from the more moving half, otherwise any of them (as MCL's
    /// released code does). Every window is ranked when the shard stores per-frame scores
    /// (version 2); from a version 1 shard, whose scores come from reading the flow, 8 random ones.
    func motionFocusedStart(_ e: ShardDataset.Entry, candidates: Int, rng: inout RandomGenerator) throws -> Int {
        let picks = dataset.shards[e.shard].frameMotion != nil ? Array(0..<candidates)
            : (0..<min(8, candidates)).map { _ in Int(rng.next() % UInt64(candidates)) }
        let scored = try picks.map { ($0, try motionScore(e, start: $0)) }.sorted { $0.1 > $1.1 }
        let pool = Double(rng.uniform()) < augmentation.motionTopProbability ? Array(scored.prefix(max(1, scored.count / 2))) : scored
        return pool[Int(rng.next() % UInt64(pool.count))].0
    }

    /// Calls `body(frame, map)` with the motion-boundary map of each frame of a flow clip;
    /// `uv(i)` gives (u, v) at flat index i of (T, H, W).
    static func boundaryMaps(frames t: Int, height h: Int, width w: Int, _ uv: (Int) -> (Float, Float), _ body: (Int, [Float]) -> Void) {
        let n = h * w
        for f in 0..<t {
            var field = FlowField(width: w, height: h)
            for i in 0..<n { (field.u[i], field.v[i]) = uv(f * n + i) }
            body(f, Motion.motionBoundaries(field))
        }
    }

    /// Mean motion-boundary map (H, W) of quantised flow (T, H, W, 2).
    static func meanBoundaries(quantized q: [UInt8], frames t: Int, height h: Int, width w: Int, bound: Float) -> [Float] {
        var acc = [Float](repeating: 0, count: h * w)
        boundaryMaps(frames: t, height: h, width: w, { i in
            (Motion.dequantize(q[2 * i], bound: bound), Motion.dequantize(q[2 * i + 1], bound: bound))
        }) { _, map in for i in 0..<(h * w) { acc[i] += map[i] / Float(t) } }
        return acc
    }

    /// The clip window's mean motion-boundary magnitude (MCL's ranking of candidate starts; the
    /// caller keeps `start` such that the window fits the video): from the scores the shard
    /// stores per frame, so ranking candidates reads no flow.
    func motionScore(_ e: ShardDataset.Entry, start: Int) throws -> Float {
        try dataset.shards[e.shard].motionScore(video: e.video, first: start, count: sampling.frames, step: sampling.stride)
    }

    /// One clip of a video, from the shard to the network's input, in four steps: read the
    /// frames (`readClip`), choose the crop (`chooseCrop`), write the RGB input (`writeRGB`),
    /// and write the motion input (`writeMotion`). rgb: (T, H, W, 3), motion: (T, H, W, C) of
    /// `sampling.motion`, both at the sampling's size.
    /// `buffers` is memory reused from clip to clip (one per batch being made).
    /// With `boundaries`, also the motion-boundary map of the clip's flow (T, H, W), cropped alike.
    func clip(_ e: ShardDataset.Entry, start: Int, rng: inout RandomGenerator, rgb: UnsafeMutablePointer<Float>,
              motion: UnsafeMutablePointer<Float>?, boundaries: UnsafeMutablePointer<Float>? = nil, buffers: ClipBuffers) throws {
        let motionCrop = augmentation.enabled && augmentation.motionSpatialCropping && dataset.hasFlow
        let flowInput = motion != nil && sampling.motion != .frameDifference
        let raw = try readClip(e, start: start, withFlow: flowInput || motionCrop || boundaries != nil, into: buffers)
        let (box, flip) = chooseCrop(raw, motionFocused: motionCrop, rng: &rng)
        writeRGB(raw, box: box, flip: flip, rng: &rng, into: rgb)
        if let motion { try writeMotion(e, raw, box: box, flip: flip, into: motion) }
        if let boundaries {
            // writeMotion has cropped the flow when the motion input comes from it
            if !flowInput { cropFlow(raw, box: box, flip: flip) }
            raw.flowInput.withUnsafeMutableBufferPointer { flow in
                derive(.motionBoundaries, flow: flow.baseAddress!, frames: sampling.frames, height: sampling.height, width: sampling.width,
                       into: boundaries)
            }
        }
    }

    /// A clip's frames as the shard stores them: rgb (T, H, W, 3) and, when read, quantised flow
    /// (T, H, W, 2), at the shard's size (a video shorter than the clip repeats its last frame);
    /// with the memory the next clip reuses: the span read before subsampling, and the flow input.
    final class ClipBuffers {
        var rgb: [UInt8] = [], flow: [UInt8] = [], span: [UInt8] = []
        var flowInput: [Float] = []
        var start = 0, stride = 1, frames = 0, height = 0, width = 0, flowBound: Float = 20
        init() {}
    }

    /// Step 1: the clip's T frames from `start` at the sampling's stride (a smaller one for
    /// videos too short for it), RGB and, with `withFlow`, flow: one hyperslab read each.
    func readClip(_ e: ShardDataset.Entry, start: Int, withFlow: Bool, into clip: ClipBuffers = ClipBuffers()) throws -> ClipBuffers {
        let r = dataset.shards[e.shard], sh = r.attributes.height, sw = r.attributes.width
        let t = sampling.frames
        let stride = e.length >= (t - 1) * sampling.stride + 1 ? sampling.stride : max(1, (e.length - 1) / max(t - 1, 1))
        let available = min(t, (e.length - 1 - start) / stride + 1)
        try r.readRGB(video: e.video, first: start, count: available, step: stride, into: &clip.rgb, span: &clip.span)
        if withFlow { try r.readFlow(video: e.video, first: start, count: available, step: stride, into: &clip.flow, span: &clip.span) }
        else { clip.flow.removeAll(keepingCapacity: true) }
        (clip.start, clip.stride, clip.frames, clip.height, clip.width) = (start, stride, t, sh, sw)
        clip.flowBound = Float(r.attributes.flowBound)
        let rgbFrame = sh * sw * 3, flowFrame = sh * sw * 2
        for _ in available..<t {
            clip.rgb += clip.rgb[(available - 1) * rgbFrame..<available * rgbFrame]
            if withFlow { clip.flow += clip.flow[(available - 1) * flowFrame..<available * flowFrame] }
        }
        return clip
    }

    /// Step 2: the crop box in the shard's frame and whether to flip. Training: a random resized
    /// crop (with `motionFocused`, MCL's: one that covers the moving region) and a random flip;
    /// evaluation: the square of the short side at `viewPosition` along the long side.
    func chooseCrop(_ raw: ClipBuffers, motionFocused: Bool, rng: inout RandomGenerator) -> (box: CropBox, flip: Bool) {
        let a = augmentation, sh = raw.height, sw = raw.width
        guard a.enabled else {
            let s = Double(min(sw, sh))
            return (CropBox(x: (Double(sw) - s) * viewPosition, y: (Double(sh) - s) * viewPosition, width: s, height: s), false)
        }
        let box: CropBox
        if motionFocused {
            let boundaries = Self.meanBoundaries(quantized: raw.flow, frames: raw.frames, height: sh, width: sw, bound: raw.flowBound)
            let (mbox, coverage) = Augmenter.motionBox(boundaries: boundaries, width: sw, height: sh)
            box = Augmenter.randomCrop(width: sw, height: sh, a, rng: &rng, mustCover: mbox, coverage: coverage)
        } else {
            box = Augmenter.randomCrop(width: sw, height: sh, a, rng: &rng)
        }
        return (box, Double(rng.uniform()) < a.flipProbability)
    }

    /// Step 3: the RGB input: cropped and resized to 0...1, photometric augmentation, then
    /// normalised with the Kinetics mean and std.
    func writeRGB(_ raw: ClipBuffers, box: CropBox, flip: Bool, rng: inout RandomGenerator, into rgb: UnsafeMutablePointer<Float>) {
        let t = sampling.frames, oh = sampling.height, ow = sampling.width
        let (mean, std) = (Self.mean, Self.std)
        guard augmentation.enabled else {
            // the same two roundings as below, in one pass
            Augmenter.cropResize(raw.rgb, frames: t, height: raw.height, width: raw.width, channels: 3, box: box, outHeight: oh, outWidth: ow,
                                 flip: flip, into: rgb) { c, v in (v / 255 - mean[c]) / std[c] }
            return
        }
        Augmenter.cropResize(raw.rgb, frames: t, height: raw.height, width: raw.width, channels: 3, box: box, outHeight: oh, outWidth: ow,
                             flip: flip, into: rgb) { _, v in v / 255 }
        Augmenter.photometric(rgb, frames: t, height: oh, width: ow, augmentation, rng: &rng)
        for i in 0..<(t * oh * ow) { for c in 0..<3 { rgb[i * 3 + c] = (rgb[i * 3 + c] - mean[c]) / std[c] } }
    }

    /// Step 4: the motion input of `sampling.motion`: the flow cropped like the frames and
    /// rescaled (resizing scales u and v, a flip negates u; in units of the flow bound), then
    /// turned into the representation; or, for frame difference, the RGB of the frames one step
    /// later minus the clip's own, cropped alike.
    func writeMotion(_ e: ShardDataset.Entry, _ raw: ClipBuffers, box: CropBox, flip: Bool, into motion: UnsafeMutablePointer<Float>) throws {
        let t = sampling.frames, oh = sampling.height, ow = sampling.width, sh = raw.height, sw = raw.width
        if sampling.motion == .frameDifference {
            let r = dataset.shards[e.shard]
            // the last sampled frame of a video repeats itself
            let nextStart = min(raw.start + 1, e.length - 1)
            var later = try r.readRGB(video: e.video, first: nextStart, count: min(t, (e.length - 1 - nextStart) / raw.stride + 1), step: raw.stride)
            let frame = sh * sw * 3
            while later.count < t * frame { later += later.suffix(frame) }
            let next = UnsafeMutablePointer<Float>.allocate(capacity: t * oh * ow * 3)
            defer { next.deallocate() }
            Augmenter.cropResize(later, frames: t, height: sh, width: sw, channels: 3, box: box, outHeight: oh, outWidth: ow,
                                 flip: flip, into: next) { _, v in v / 255 }
            Augmenter.cropResize(raw.rgb, frames: t, height: sh, width: sw, channels: 3, box: box, outHeight: oh, outWidth: ow,
                                 flip: flip, into: motion) { _, v in v / 255 }
            for i in 0..<(t * oh * ow * 3) { motion[i] = next[i] - motion[i] }
            return
        }
        cropFlow(raw, box: box, flip: flip)
        raw.flowInput.withUnsafeMutableBufferPointer { flow in
            derive(sampling.motion, flow: flow.baseAddress!, frames: t, height: oh, width: ow, into: motion)
        }
    }

    /// The clip's flow cropped like its frames and rescaled (resizing scales u and v, a flip
    /// negates u; in units of the flow bound) into `raw.flowInput`: (T, H, W, 2) at the sampling's size.
    func cropFlow(_ raw: ClipBuffers, box: CropBox, flip: Bool) {
        let t = sampling.frames, oh = sampling.height, ow = sampling.width
        let bound = raw.flowBound
        let su = Float(Double(ow) / box.width) * (flip ? -1 : 1) / bound, sv = Float(Double(oh) / box.height) / bound
        raw.flowInput.resize(to: t * oh * ow * 2)
        raw.flowInput.withUnsafeMutableBufferPointer { flow in
            Augmenter.cropResize(raw.flow, frames: t, height: raw.height, width: raw.width, channels: 2, box: box, outHeight: oh, outWidth: ow,
                                 flip: flip, into: flow.baseAddress!) { c, q in
                let pixels = q * (2 * bound) / 255 - bound
                return pixels * (c == 0 ? su : sv)
            }
        }
    }

    /// Flow (T, H, W, 2) -> the requested representation in `out`.
    func derive(_ kind: MotionRepresentation, flow: UnsafeMutablePointer<Float>, frames t: Int, height h: Int, width w: Int,
                into out: UnsafeMutablePointer<Float>) {
        let n = h * w
        switch kind {
        case .flow: out.update(from: flow, count: t * n * 2)
        case .magnitude:
            for i in 0..<(t * n) { out[i] = (flow[2 * i] * flow[2 * i] + flow[2 * i + 1] * flow[2 * i + 1]).squareRoot() }
        case .motionBoundaries:
            Self.boundaryMaps(frames: t, height: h, width: w, { i in (flow[2 * i], flow[2 * i + 1]) }) { f, map in
                for i in 0..<n { out[f * n + i] = map[i] }
            }
        case .frameDifference: break
        }
    }
}

/// Prefetches batches on background threads into a bounded queue, in order. Memory stays at
/// `depth` batches whatever the dataset's size.
public final class StreamingLoader: @unchecked Sendable {
    public let sampler: ClipSampler
    private let queue: BatchQueue

    /// Starts at `position` (resume) with `workers` threads keeping up to `depth` batches ready.
    public init(sampler: ClipSampler, position: LoaderPosition = LoaderPosition(), workers: Int = 2, depth: Int = 4) {
        self.sampler = sampler
        queue = BatchQueue(sampler: sampler, first: position.epoch * sampler.batchesPerEpoch + position.batch,
                           depth: max(1, depth), workers: max(1, workers))
    }

    deinit { queue.stop() }

    /// Where the next batch comes from.
    public var position: LoaderPosition { queue.position }

    /// The next batch, waiting for it if it is not ready yet.
    public func next() throws -> ClipBatch { try queue.next() }

    /// Stops the workers and waits for them: a worker still reading when the process exits would
    /// race HDF5's own shutdown, which closes every open file.
    public func stop() { queue.stop() }
}

/// The queue and its worker threads; the threads hold it strongly, so it outlives the loader
/// until they have stopped.
private final class BatchQueue: @unchecked Sendable {
    let sampler: ClipSampler
    let depth: Int
    var ready: [Int: Result<ClipBatch, Error>] = [:]
    var nextToIssue: Int, nextToTake: Int
    let condition = NSCondition()
    var stopped = false
    var running: Int

    init(sampler: ClipSampler, first: Int, depth: Int, workers: Int) {
        self.sampler = sampler; self.depth = depth
        nextToIssue = first; nextToTake = first
        running = workers
        for _ in 0..<workers {
            let t = Thread { self.work() }
            t.stackSize = 1 << 22
            t.start()
        }
    }

    var position: LoaderPosition {
        condition.lock(); defer { condition.unlock() }
        let per = sampler.batchesPerEpoch
        return LoaderPosition(epoch: nextToTake / per, batch: nextToTake % per)
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    func work() {
        defer { condition.lock(); running -= 1; condition.broadcast(); condition.unlock() }
        while true {
            condition.lock()
            while !stopped && nextToIssue - nextToTake >= depth { condition.wait() }
            if stopped { condition.unlock(); return }
            let index = nextToIssue
            nextToIssue += 1
            condition.unlock()
            let per = sampler.batchesPerEpoch
            let result = Result { try sampler.batch(at: LoaderPosition(epoch: index / per, batch: index % per)) }
            condition.lock()
            ready[index] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    func next() throws -> ClipBatch {
        condition.lock()
        while ready[nextToTake] == nil { condition.wait() }
        let result = ready.removeValue(forKey: nextToTake)!
        nextToTake += 1
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }
}
