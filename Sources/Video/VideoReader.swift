import CFFmpeg
import Foundation

/// Frames decoded to RGB: (F, H, W, 3) uint8, row-major.
public struct DecodedVideo: Sendable {
    public var pixels: [UInt8]
    public var frameCount: Int
    public var height: Int, width: Int
    /// Frames per second of `pixels` (the target rate when resampled).
    public var fps: Double
    /// Problems that did not stop decoding (a damaged packet, a truncated end).
    public var warnings: [String]

    public init(pixels: [UInt8], frameCount: Int, height: Int, width: Int, fps: Double, warnings: [String] = []) {
        precondition(pixels.count == frameCount * height * width * 3, "pixels must be (frameCount, height, width, 3)")
        self.pixels = pixels; self.frameCount = frameCount; self.height = height; self.width = width; self.fps = fps; self.warnings = warnings
    }

    /// One frame's pixels (H, W, 3).
    public func frame(_ i: Int) -> ArraySlice<UInt8> {
        let n = height * width * 3
        return pixels[(i * n)..<((i + 1) * n)]
    }
}

/// How decoded frames are sized.
public enum FrameSize: Sendable, Equatable {
    case original
    /// Shorter side to this many pixels, aspect kept, both sides even.
    case shortSide(Int)
    case fixed(width: Int, height: Int)

    func resolve(width: Int, height: Int) -> (Int, Int) {
        switch self {
        case .original: return (width, height)
        case .fixed(let w, let h): return (w, h)
        case .shortSide(let s):
            let even = { (x: Double) in max(2, Int((x / 2).rounded()) * 2) }
            return width <= height ? (s, even(Double(height) * Double(s) / Double(width)))
                                   : (even(Double(width) * Double(s) / Double(height)), s)
        }
    }
}

/// Metadata of a video stream.
public struct VideoInfo: Sendable {
    public var width: Int, height: Int
    public var fps: Double
    public var codec: String
    public var durationSeconds: Double?
}

/// Decodes a file with libavformat / libavcodec and converts frames with libswscale.
/// A damaged stream yields the frames that decoded, with a warning; a file that is not a
/// video at all is a `VideoError` naming it.
public final class VideoReader {
    public let path: String
    public let info: VideoInfo
    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private let streamIndex: Int32
    private let timeBase: Double

    public init(path: String) throws {
        _ = quietFFmpeg
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw VideoError("\(path): no such file") }
        var ctx: UnsafeMutablePointer<AVFormatContext>?
        var status = avformat_open_input(&ctx, path, nil, nil)
        guard status >= 0, let ctx else { throw VideoError("\(path): cannot open as a video (\(ffmpegMessage(status)))") }
        format = ctx
        status = avformat_find_stream_info(ctx, nil)
        guard status >= 0 else {
            avformat_close_input(&format)
            throw VideoError("\(path): cannot read stream information (\(ffmpegMessage(status)))")
        }
        var decoder: UnsafePointer<AVCodec>?
        let index = av_find_best_stream(ctx, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        guard index >= 0, let decoder, let stream = ctx.pointee.streams[Int(index)] else {
            avformat_close_input(&format)
            throw VideoError("\(path): no decodable video stream (\(ffmpegMessage(index)))")
        }
        streamIndex = index
        guard let cc = avcodec_alloc_context3(decoder) else {
            avformat_close_input(&format)
            throw VideoError("\(path): out of memory allocating a decoder")
        }
        codec = cc
        avcodec_parameters_to_context(cc, stream.pointee.codecpar)
        cc.pointee.thread_count = 1   // one decoder thread per file; parallelism is across files
        status = avcodec_open2(cc, decoder, nil)
        guard status >= 0 else {
            avcodec_free_context(&codec)
            avformat_close_input(&format)
            throw VideoError("\(path): cannot open the \(String(cString: decoder.pointee.name)) decoder (\(ffmpegMessage(status)))")
        }
        let tb = stream.pointee.time_base
        timeBase = tb.den != 0 ? Double(tb.num) / Double(tb.den) : 0
        // Constant-rate video: r_frame_rate is exact, while avg_frame_rate is derived from a
        // duration some muxers store one frame short. Variable rate: the average is the honest one.
        func value(_ r: AVRational) -> Double? { r.num > 0 && r.den > 0 ? Double(r.num) / Double(r.den) : nil }
        let average = value(stream.pointee.avg_frame_rate), real = value(stream.pointee.r_frame_rate)
        let fps: Double
        if let a = average, let r = real { fps = abs(a - r) / r < 0.1 ? r : a } else { fps = average ?? real ?? 25 }
        let duration = ctx.pointee.duration > 0 ? Double(ctx.pointee.duration) / Double(AV_TIME_BASE) : nil
        info = VideoInfo(width: Int(cc.pointee.width), height: Int(cc.pointee.height), fps: fps,
                         codec: String(cString: decoder.pointee.name), durationSeconds: duration)
    }

    deinit {
        avcodec_free_context(&codec)
        avformat_close_input(&format)
    }

    /// Decodes every frame, resized to `size`, resampled to `fps` (nearest earlier-or-closest
    /// frame in time) when given, stopping after `maxFrames` output frames: the whole video in memory.
    public func decodeAll(size: FrameSize = .original, fps targetFPS: Double? = nil, maxFrames: Int = .max) throws -> DecodedVideo {
        var pixels: [UInt8] = []
        let stream = try decode(size: size, fps: targetFPS, maxFrames: maxFrames) { pixels.append(contentsOf: $0) }
        return DecodedVideo(pixels: pixels, frameCount: stream.frameCount, height: stream.height, width: stream.width,
                            fps: stream.fps, warnings: stream.warnings)
    }

    /// What `decode(size:fps:maxFrames:frame:)` handed out: the frames' count, size and rate, and
    /// the problems that did not stop it.
    public struct DecodedStream: Sendable {
        public var frameCount: Int, height: Int, width: Int
        public var fps: Double
        public var warnings: [String]
    }

    /// Decodes as `decodeAll`, handing each output frame (H, W, 3) to `frame` as it comes, so
    /// memory does not grow with the video's length. The buffer is valid during the call only.
    public func decode(size: FrameSize = .original, fps targetFPS: Double? = nil, maxFrames: Int = .max,
                       frame deliver: (UnsafeBufferPointer<UInt8>) throws -> Void) throws -> DecodedStream {
        guard let format, let codec else { throw VideoError("\(path): reader is closed") }
        guard info.width > 0, info.height > 0 else { throw VideoError("\(path): video has no frame size") }
        let (outW, outH) = size.resolve(width: info.width, height: info.height)
        var warnings: [String] = []
        let frameBytes = outW * outH * 3
        var decodedFrames = 0, outputFrames = 0
        var sws: OpaquePointer?
        defer { sws_freeContext(sws) }
        var current = [UInt8](repeating: 0, count: frameBytes)   // last decoded frame, converted
        var currentTime: Double? = nil
        let sourceStep = 1 / max(info.fps, 1e-3)

        var packet = av_packet_alloc()
        var frame = av_frame_alloc()
        defer { av_packet_free(&packet); av_frame_free(&frame) }
        guard let packet, let frame else { throw VideoError("\(path): out of memory") }

        /// Emits `current` for every output time before `limit` (all frames when not resampling).
        func emit(until limit: Double) throws {
            guard currentTime != nil else { return }
            if let r = targetFPS {
                while outputFrames < maxFrames && Double(outputFrames) / r < limit {
                    try current.withUnsafeBufferPointer(deliver); outputFrames += 1
                }
            } else if outputFrames < maxFrames {
                try current.withUnsafeBufferPointer(deliver); outputFrames += 1
            }
        }

        func convert() throws {
            let w = frame.pointee.width, h = frame.pointee.height
            sws = sws_getCachedContext(sws, w, h, AVPixelFormat(frame.pointee.format), Int32(outW), Int32(outH),
                                       AV_PIX_FMT_RGB24, SWS_AREA, nil, nil, nil)
            guard let sws else { throw VideoError("\(path): cannot convert frames of pixel format \(frame.pointee.format)") }
            try current.withUnsafeMutableBufferPointer { buf in
                var dst: [UnsafeMutablePointer<UInt8>?] = [buf.baseAddress, nil, nil, nil]
                var strides: [Int32] = [Int32(outW * 3), 0, 0, 0]
                let src = withUnsafePointer(to: &frame.pointee.data) { $0.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { $0 } }
                let srcStrides = withUnsafePointer(to: &frame.pointee.linesize) { $0.withMemoryRebound(to: Int32.self, capacity: 8) { $0 } }
                let rows = sws_scale(sws, src, srcStrides, 0, h, &dst, &strides)
                guard rows > 0 else { throw VideoError("\(path): frame conversion failed") }
            }
        }

        /// Takes every frame the decoder has ready.
        func drain() throws {
            while true {
                let r = avcodec_receive_frame(codec, frame)
                if r == maclr_AVERROR_EAGAIN() || r == maclr_AVERROR_EOF() { return }
                if r < 0 { warnings.append("decoder error after frame \(decodedFrames): \(ffmpegMessage(r))"); return }
                let pts = frame.pointee.best_effort_timestamp
                let time = pts != maclr_AV_NOPTS_VALUE() ? Double(pts) * timeBase : Double(decodedFrames) * sourceStep
                // The previous frame covers output times up to the midpoint between the two.
                if let prev = currentTime { try emit(until: (prev + time) / 2) }
                try convert()
                currentTime = time
                decodedFrames += 1
                av_frame_unref(frame)
                if outputFrames >= maxFrames { return }
            }
        }

        var badPackets = 0
        reading: while outputFrames < maxFrames {
            let r = av_read_frame(format, packet)
            if r == maclr_AVERROR_EOF() { break }
            if r < 0 { warnings.append("reading stopped after \(decodedFrames) frames: \(ffmpegMessage(r))"); break }
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == streamIndex else { continue }
            let s = avcodec_send_packet(codec, packet)
            if s < 0 && s != maclr_AVERROR_EAGAIN() {
                badPackets += 1
                if badPackets > 50 { warnings.append("gave up after 50 damaged packets"); break reading }
                continue
            }
            try drain()
        }
        avcodec_send_packet(codec, nil)   // flush
        if outputFrames < maxFrames { try drain() }
        if let time = currentTime { try emit(until: time + sourceStep - 1e-9) }   // the last frame lasts one step
        if badPackets > 0 { warnings.append("\(badPackets) damaged packet(s) skipped") }
        // A stream that ends well before the duration its container declares was cut short.
        if outputFrames < maxFrames, let declared = info.durationSeconds, let last = currentTime,
           last + 1.5 * sourceStep < declared - sourceStep {
            warnings.append(String(format: "frames end at %.2f s of a declared %.2f s (truncated file?)", last + sourceStep, declared))
        }
        avcodec_flush_buffers(codec)
        guard outputFrames > 0 else {
            throw VideoError("\(path): no frame could be decoded" + (warnings.isEmpty ? "" : " (\(warnings.joined(separator: "; ")))"))
        }
        return DecodedStream(frameCount: outputFrames, height: outH, width: outW, fps: targetFPS ?? info.fps, warnings: warnings)
    }
}
