import Dispatch
import CHDF5
import Foundation
import Tensor
import Video

/// The shard format (README.md, "The data format"): one HDF5 file holding every frame of its videos.
public enum ShardFormat {
    public static let name = "maclr-shard"
    /// 2 adds /motion (per-frame motion scores); version 1 shards still load, their scores
    /// computed from the flow when sampling needs them.
    public static let version = 2
    public static let readableVersions = 1...2
    /// Rows per HDF5 chunk of /rgb and /flow: about one clip, so a clip read touches few chunks.
    public static let chunkFrames = 16

    /// Each frame's motion score, (F): the spatial mean of the motion-boundary magnitude of its
    /// quantised flow (F, H, W, 2), in pixels. A clip window's score (MCL's ranking of clips by
    /// motion) is the mean of its frames' scores.
    public static func frameMotion(quantizedFlow q: [UInt8], frames: Int, height h: Int, width w: Int, bound: Float) -> [Float] {
        q.withUnsafeBufferPointer { frameMotion(quantizedFlow: $0, frames: frames, height: h, width: w, bound: bound) }
    }

    static func frameMotion(quantizedFlow q: UnsafeBufferPointer<UInt8>, frames: Int, height h: Int, width w: Int, bound: Float) -> [Float] {
        let n = h * w
        return (0..<frames).map { f in
            var field = FlowField(width: w, height: h)
            for i in 0..<n {
                field.u[i] = Motion.dequantize(q[(f * n + i) * 2], bound: bound)
                field.v[i] = Motion.dequantize(q[(f * n + i) * 2 + 1], bound: bound)
            }
            return Motion.motionBoundaries(field).reduce(0, +) / Float(n)
        }
    }
}

/// One video ready to be written: frames (F, H, W, 3) and optional flow (F, H, W, 2), quantised.
public struct PreparedVideo: Sendable {
    public var name: String, source: String, label: Int
    public var frames: Int, height: Int, width: Int
    public var rgb: [UInt8]
    public var flow: [UInt8]?

    public init(name: String, source: String, label: Int, frames: Int, height: Int, width: Int, rgb: [UInt8], flow: [UInt8]?) {
        self.name = name; self.source = source; self.label = label; self.frames = frames
        self.height = height; self.width = width; self.rgb = rgb; self.flow = flow
    }
}

/// A video's entry in a shard's table.
public struct ShardVideo: Sendable, Equatable {
    public var name: String, source: String
    public var start: Int, length: Int, label: Int
    public init(name: String, source: String, start: Int, length: Int, label: Int) {
        self.name = name; self.source = source; self.start = start; self.length = length; self.label = label
    }
}

/// Root attributes of a shard.
public struct ShardAttributes: Sendable, Equatable {
    public var height: Int, width: Int
    public var fps: Double
    public var flowAlgorithm: String   // "tvl1" or "none"
    public var flowBound: Double
    public init(height: Int, width: Int, fps: Double, flowAlgorithm: String, flowBound: Double) {
        self.height = height; self.width = width; self.fps = fps; self.flowAlgorithm = flowAlgorithm; self.flowBound = flowBound
    }
}

/// Writes a shard under a temporary name; `finish()` adds the video table and renames it into
/// place, so an interrupted write never leaves a file with the final name.
public final class ShardWriter {
    public let path: String
    let temporaryPath: String
    let attributes: ShardAttributes
    private var file: H5File?
    private var rgb: H5Dataset?, flow: H5Dataset?
    private var videos: [ShardVideo] = []
    private var rows = 0
    /// Every frame's motion score so far (with flow), written at `finish()`.
    private var motion: [Float] = []
    /// The format version written: the current one; tests write version 1 to check it still loads.
    var formatVersion = ShardFormat.version

    public init(path: String, attributes: ShardAttributes) throws {
        self.path = path
        self.attributes = attributes
        let url = URL(fileURLWithPath: path)
        temporaryPath = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial").path
        let f = try H5File(creating: temporaryPath)
        file = f
        rgb = try f.createExtendible("/rgb", type: maclr_H5T_NATIVE_UINT8(), rowShape: [attributes.height, attributes.width, 3],
                                     chunkRows: ShardFormat.chunkFrames)
        flow = attributes.flowAlgorithm == "none" ? nil
            : try f.createExtendible("/flow", type: maclr_H5T_NATIVE_UINT8(), rowShape: [attributes.height, attributes.width, 2],
                                     chunkRows: ShardFormat.chunkFrames)
    }

    public var videoCount: Int { videos.count }
    public var frameCount: Int { rows }

    /// Seconds spent on the frames' motion scores so far (the rest of `append` is HDF5 writes).
    public private(set) var motionScoreSeconds = 0.0

    public func append(_ v: PreparedVideo) throws {
        let frameBytes = attributes.height * attributes.width
        precondition(v.rgb.count == v.frames * frameBytes * 3, "\(v.name): rgb has \(v.rgb.count) bytes for \(v.frames) frames")
        try checkVideo(name: v.name, height: v.height, width: v.width)
        if flow != nil {
            guard let vf = v.flow, vf.count == v.frames * frameBytes * 2 else {
                throw HDF5Error("\(path): video \(v.name) has no flow of \(v.frames) frames")
            }
        }
        try v.rgb.withUnsafeBufferPointer { rgb in
            if let vf = v.flow, flow != nil {
                try vf.withUnsafeBufferPointer { try appendFrames(rgb: rgb, flow: $0, count: v.frames) }
            } else {
                try appendFrames(rgb: rgb, flow: nil, count: v.frames)
            }
        }
        videos.append(ShardVideo(name: v.name, source: v.source, start: rows, length: v.frames, label: v.label))
        rows += v.frames
    }

    /// A video from its store, one window of frames at a time.
    func append(_ v: StoredVideo) throws {
        try checkVideo(name: v.name, height: v.height, width: v.width)
        if flow != nil && v.store.flowFrameBytes == 0 { throw HDF5Error("\(path): video \(v.name) has no flow") }
        try v.store.forEachWindow(of: 4 * ShardFormat.chunkFrames) { rgb, flow, n in try appendFrames(rgb: rgb, flow: flow, count: n) }
        videos.append(ShardVideo(name: v.name, source: v.source, start: rows, length: v.store.frames, label: v.label))
        rows += v.store.frames
    }

    private func checkVideo(name: String, height: Int, width: Int) throws {
        guard height == attributes.height, width == attributes.width else {
            throw HDF5Error("\(path): video \(name) is \(width)x\(height), the shard holds \(attributes.width)x\(attributes.height)")
        }
        guard rgb != nil else { throw HDF5Error("\(path): shard is already finished") }
    }

    /// Appends `count` frames of one video: rgb (count, H, W, 3), flow (count, H, W, 2) when the shard has flow.
    private func appendFrames(rgb frames: UnsafeBufferPointer<UInt8>, flow fields: UnsafeBufferPointer<UInt8>?, count: Int) throws {
        guard let rgb else { throw HDF5Error("\(path): shard is already finished") }
        try rgb.append(frames.baseAddress!, rows: count, memoryType: maclr_H5T_NATIVE_UINT8())
        if let flow, let fields {
            try flow.append(fields.baseAddress!, rows: count, memoryType: maclr_H5T_NATIVE_UINT8())
            let start = DispatchTime.now().uptimeNanoseconds
            motion += ShardFormat.frameMotion(quantizedFlow: fields, frames: count, height: attributes.height, width: attributes.width,
                                              bound: Float(attributes.flowBound))
            motionScoreSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
    }

    /// Writes the video table and attributes, closes, and renames into place.
    public func finish() throws {
        guard let f = file else { return }
        try f.createGroup("/videos")
        try f.writeStrings("/videos/name", videos.map(\.name))
        try f.writeStrings("/videos/source", videos.map(\.source))
        try f.write("/videos/start", type: maclr_H5T_NATIVE_INT64(), values: videos.map { Int64($0.start) })
        try f.write("/videos/length", type: maclr_H5T_NATIVE_INT32(), values: videos.map { Int32($0.length) })
        try f.write("/videos/label", type: maclr_H5T_NATIVE_INT32(), values: videos.map { Int32($0.label) })
        if flow != nil && rows > 0 && formatVersion >= 2 { try f.write("/motion", type: maclr_H5T_NATIVE_FLOAT(), values: motion) }
        try f.setAttribute("format", ShardFormat.name)
        try f.setAttribute("version", formatVersion)
        try f.setAttribute("height", attributes.height)
        try f.setAttribute("width", attributes.width)
        try f.setAttribute("fps", attributes.fps)
        try f.setAttribute("flow_algorithm", attributes.flowAlgorithm)
        try f.setAttribute("flow_bound", attributes.flowBound)
        try f.flush()
        // Close every handle (datasets first: HDF5 keeps a file open while objects in it are),
        // then sync and rename: the final name only ever points at a complete, closed file.
        rgb = nil; flow = nil; file = nil
        try DurableFiles.commit(URL(fileURLWithPath: temporaryPath), to: URL(fileURLWithPath: path))
    }
}

/// Reads a shard: attributes, video table, and frames by hyperslab (never the whole file).
public final class ShardReader {
    public let path: String
    public let attributes: ShardAttributes
    public let videos: [ShardVideo]
    public let version: Int
    let file: H5File
    let rgb: H5Dataset
    let flow: H5Dataset?
    /// How frames are read (the same bytes every way; `maclr bench data` times each).
    public var readPattern: ReadPattern = .directChunk

    public enum ReadPattern: String, CaseIterable, Sendable {
        /// The whole span of frames as one hyperslab, every step-th kept in memory.
        case contiguous
        /// Each chunk the frames touch read whole as stored (H5Dread_chunk), the frames copied
        /// out of it; for shards whose chunks are unfiltered, else read as `contiguous`.
        case directChunk
        /// A strided hyperslab selection: HDF5 picks the frames.
        case stridedSelection
    }

    public init(path: String) throws {
        self.path = path
        file = try H5File(reading: path)
        let format = try file.stringAttribute("format")
        guard format == ShardFormat.name else { throw HDF5Error("\(path): format '\(format)' is not \(ShardFormat.name)") }
        version = Int(try file.numberAttribute("version"))
        guard ShardFormat.readableVersions.contains(version) else {
            throw HDF5Error("\(path): shard version \(version), this maclr reads versions \(ShardFormat.readableVersions.lowerBound) to \(ShardFormat.readableVersions.upperBound)")
        }
        attributes = ShardAttributes(height: Int(try file.numberAttribute("height")), width: Int(try file.numberAttribute("width")),
                                     fps: try file.numberAttribute("fps"), flowAlgorithm: try file.stringAttribute("flow_algorithm"),
                                     flowBound: try file.numberAttribute("flow_bound"))
        rgb = try file.open("/rgb")
        flow = file.exists("/flow") ? try file.open("/flow") : nil
        let names = try file.open("/videos/name").readStrings()
        let sources = try file.open("/videos/source").readStrings()
        let starts = try file.open("/videos/start").readAll(Int64.self, memoryType: maclr_H5T_NATIVE_INT64())
        let lengths = try file.open("/videos/length").readAll(Int32.self, memoryType: maclr_H5T_NATIVE_INT32())
        let labels = try file.open("/videos/label").readAll(Int32.self, memoryType: maclr_H5T_NATIVE_INT32())
        guard Set([names.count, sources.count, starts.count, lengths.count, labels.count]).count == 1 else {
            throw HDF5Error("\(path): /videos tables have different lengths")
        }
        videos = (0..<names.count).map {
            ShardVideo(name: names[$0], source: sources[$0], start: Int(starts[$0]), length: Int(lengths[$0]), label: Int(labels[$0]))
        }
        frameMotion = file.exists("/motion") ? try file.open("/motion").readAll(Float.self, memoryType: maclr_H5T_NATIVE_FLOAT()) : nil
        if let m = frameMotion, m.count != rgb.shape[0] {
            throw HDF5Error("\(path): /motion has \(m.count) scores for \(rgb.shape[0]) frames")
        }
    }

    /// Every frame's motion score (`ShardFormat.frameMotion`), from version 2 on; nil before.
    public private(set) var frameMotion: [Float]?

    /// The mean motion score of `count` frames of video `index` from `first`, every `step`-th,
    /// from the stored scores, or computed from the flow for a version 1 shard.
    public func motionScore(video index: Int, first: Int, count: Int, step: Int) throws -> Float {
        let v = videos[index]
        guard first >= 0, count > 0, first + (count - 1) * step < v.length else {
            throw HDF5Error("\(path): frames \(first)+\(count)x\(step) outside video \(v.name) of \(v.length) frames")
        }
        if let frameMotion {
            return (0..<count).reduce(0) { $0 + frameMotion[v.start + first + $1 * step] } / Float(count)
        }
        let flow = try readFlow(video: index, first: first, count: count, step: step)
        return ShardFormat.frameMotion(quantizedFlow: flow, frames: count, height: attributes.height, width: attributes.width,
                                       bound: Float(attributes.flowBound)).reduce(0, +) / Float(count)
    }

    public var rgbShape: [Int] { rgb.shape }
    public var flowShape: [Int]? { flow?.shape }
    public var hasFlow: Bool { flow != nil }

    /// `count` frames of video `index` from frame `first`, every `step`-th: (count, H, W, 3).
    public func readRGB(video index: Int, first: Int, count: Int, step: Int = 1) throws -> [UInt8] {
        var out: [UInt8] = [], span: [UInt8] = []
        try readFrames(rgb, channels: 3, video: index, first: first, count: count, step: step, into: &out, span: &span)
        return out
    }

    /// The same into `out`, reusing its memory and `span`'s (the loader's buffers: a clip's
    /// frames then allocate nothing once the buffers have grown to a clip).
    public func readRGB(video index: Int, first: Int, count: Int, step: Int, into out: inout [UInt8], span: inout [UInt8]) throws {
        try readFrames(rgb, channels: 3, video: index, first: first, count: count, step: step, into: &out, span: &span)
    }

    /// The same frames' quantised flow: (count, H, W, 2).
    public func readFlow(video index: Int, first: Int, count: Int, step: Int = 1) throws -> [UInt8] {
        var out: [UInt8] = [], span: [UInt8] = []
        try readFlow(video: index, first: first, count: count, step: step, into: &out, span: &span)
        return out
    }

    /// The same into `out`, reusing its memory and `span`'s.
    public func readFlow(video index: Int, first: Int, count: Int, step: Int, into out: inout [UInt8], span: inout [UInt8]) throws {
        guard let flow else { throw HDF5Error("\(path): shard has no flow") }
        try readFrames(flow, channels: 2, video: index, first: first, count: count, step: step, into: &out, span: &span)
    }

    /// `count` frames of a per-frame dataset from `first`, every `step`-th, bounded by the
    /// video's frames. With a step, the frames between are read too and dropped in memory: HDF5
    /// serves whole chunks (directly, or as one contiguous hyperslab) far faster than a strided
    /// selection of the same frames (`maclr bench data` measures each way).
    private func readFrames(_ dataset: H5Dataset, channels: Int, video index: Int, first: Int, count: Int, step: Int,
                            into out: inout [UInt8], span: inout [UInt8]) throws {
        let v = videos[index]
        guard first >= 0, count > 0, step > 0, first + (count - 1) * step < v.length else {
            throw HDF5Error("\(path): frames \(first)+\(count)x\(step) outside video \(v.name) of \(v.length) frames")
        }
        let frameBytes = attributes.height * attributes.width * channels
        out.resize(to: count * frameBytes)
        if readPattern == .directChunk, dataset.rawChunkRows != nil {
            // `span` serves as the chunk buffer
            try out.withUnsafeMutableBytes {
                try dataset.readRowsByChunk(start: v.start + first, count: count, step: step, rowBytes: frameBytes, chunk: &span, into: $0.baseAddress!)
            }
            return
        }
        if step == 1 || readPattern == .stridedSelection {
            try out.withUnsafeMutableBytes {
                try dataset.readRows(start: v.start + first, count: count, step: step, memoryType: maclr_H5T_NATIVE_UINT8(), into: $0.baseAddress!)
            }
            return
        }
        let frames = (count - 1) * step + 1
        span.resize(to: frames * frameBytes)
        try span.withUnsafeMutableBytes {
            try dataset.readRows(start: v.start + first, count: frames, memoryType: maclr_H5T_NATIVE_UINT8(), into: $0.baseAddress!)
        }
        out.withUnsafeMutableBytes { o in
            span.withUnsafeBytes { s in
                for i in 0..<count { (o.baseAddress! + i * frameBytes).copyMemory(from: s.baseAddress! + i * step * frameBytes, byteCount: frameBytes) }
            }
        }
    }
}

/// Features written by `maclr extract`: /features (V, d) float32, /names, /labels, attributes.
public enum FeatureFile {
    public static func write(path: String, features: [Float], dimension: Int, names: [String], labels: [Int], attributes: [String: String]) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial").path
        do {
            let f = try H5File(creating: tmp)
            let d = try f.createExtendible("/features", type: maclr_H5T_NATIVE_FLOAT(), rowShape: [dimension], chunkRows: max(1, min(names.count, 1024)))
            try features.withUnsafeBytes { try d.append($0.baseAddress!, rows: names.count, memoryType: maclr_H5T_NATIVE_FLOAT()) }
            try f.writeStrings("/names", names)
            try f.write("/labels", type: maclr_H5T_NATIVE_INT32(), values: labels.map { Int32($0) })
            for (k, v) in attributes { try f.setAttribute(k, v) }
            try f.flush()
        }
        try DurableFiles.commit(URL(fileURLWithPath: tmp), to: URL(fileURLWithPath: path))
    }
}

extension Array where Element: Numeric {
    /// Sets the count to `n`, keeping the memory (new elements are zero, existing ones kept).
    mutating func resize(to n: Int) {
        if count > n { removeLast(count - n) } else if count < n { append(contentsOf: repeatElement(0, count: n - count)) }
    }
}
