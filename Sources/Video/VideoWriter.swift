import CFFmpeg
import Foundation

/// Encodes RGB frames (H, W, 3) uint8 into a video file with libavcodec / libavformat.
/// The container comes from the file extension; the codec defaults by container
/// (.mp4 / .mkv: H.264 when libx264 is present else MPEG-4 part 2; .avi: MPEG-4 part 2;
/// .webm: VP9) and can be named (e.g. "mjpeg", "ffv1", "mpeg4", "libx264").
public final class VideoWriter {
    public let path: String
    public let width: Int, height: Int
    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var stream: UnsafeMutablePointer<AVStream>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var sws: OpaquePointer?
    private var nextPTS: Int64 = 0
    private var finished = false

    public static func defaultCodec(for path: String) -> String {
        let ext = (path as NSString).pathExtension.lowercased()
        let h264 = avcodec_find_encoder_by_name("libx264") != nil ? "libx264" : "mpeg4"
        switch ext {
        case "webm": return "libvpx-vp9"
        case "avi": return "mpeg4"
        case "png": return "png"
        case "gif": return "gif"
        default: return h264
        }
    }

    /// - Parameters: quality: a constant-quality level where the codec has one (CRF for H.264 /
    ///   VP9, qscale for MPEG-4 / MJPEG); lower is better.
    public init(path: String, width: Int, height: Int, fps: Int, codec codecName: String? = nil, quality: Int = 18) throws {
        _ = quietFFmpeg
        self.path = path; self.width = width; self.height = height
        let name = codecName ?? Self.defaultCodec(for: path)
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0 else {
            throw VideoError("\(path): frame size \(width)x\(height) must be positive and even")
        }
        var status = avformat_alloc_output_context2(&format, nil, nil, path)
        guard status >= 0, let format else { throw VideoError("\(path): no container for this file name (\(ffmpegMessage(status)))") }
        guard let encoder = avcodec_find_encoder_by_name(name) else {
            throw VideoError("\(path): encoder '\(name)' is not in this FFmpeg build")
        }
        guard let st = avformat_new_stream(format, nil), let cc = avcodec_alloc_context3(encoder) else {
            throw VideoError("\(path): out of memory")
        }
        stream = st; codec = cc
        cc.pointee.width = Int32(width); cc.pointee.height = Int32(height)
        cc.pointee.time_base = AVRational(num: 1, den: Int32(fps))
        cc.pointee.framerate = AVRational(num: Int32(fps), den: 1)
        cc.pointee.gop_size = 12
        // No B-frames: decode order equals display order, so MP4's edit list cannot cut the last frame.
        cc.pointee.max_b_frames = 0
        switch name {
        case "mjpeg": cc.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        case "ffv1": cc.pointee.pix_fmt = AV_PIX_FMT_YUV444P
        // a single .png image (FFmpeg's image2 muxer) and an animated .gif (3-3-2 colours, dithered)
        case "png": cc.pointee.pix_fmt = AV_PIX_FMT_RGB24
        case "gif": cc.pointee.pix_fmt = AV_PIX_FMT_RGB8
        default: cc.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        }
        cc.pointee.thread_count = 1
        switch name {
        case "libx264":
            av_opt_set(cc.pointee.priv_data, "crf", "\(quality)", 0)
            av_opt_set(cc.pointee.priv_data, "preset", "veryfast", 0)
        case "libvpx-vp9":
            av_opt_set(cc.pointee.priv_data, "crf", "\(quality + 12)", 0)
            av_opt_set(cc.pointee.priv_data, "deadline", "realtime", 0)
            av_opt_set(cc.pointee.priv_data, "cpu-used", "8", 0)
            cc.pointee.bit_rate = 0
        case "mpeg4", "mjpeg":
            cc.pointee.flags |= Int32(AV_CODEC_FLAG_QSCALE)
            cc.pointee.global_quality = Int32(max(1, quality / 6)) * FF_QP2LAMBDA
        default: break
        }
        if format.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            cc.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER)
        }
        status = avcodec_open2(cc, encoder, nil)
        guard status >= 0 else { throw VideoError("\(path): cannot open encoder '\(name)' (\(ffmpegMessage(status)))") }
        avcodec_parameters_from_context(st.pointee.codecpar, cc)
        st.pointee.time_base = cc.pointee.time_base
        if format.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            status = avio_open(&format.pointee.pb, path, AVIO_FLAG_WRITE)
            guard status >= 0 else { throw VideoError("\(path): cannot create file (\(ffmpegMessage(status)))") }
        }
        // MP4's muxer writes an edit list whose length comes out one frame short here (the demuxer
        // then discards the last frame); a stream starting at pts 0 needs no edit list.
        var options: OpaquePointer?
        av_dict_set(&options, "use_editlist", "0", 0)
        status = avformat_write_header(format, &options)
        av_dict_free(&options)
        guard status >= 0 else { throw VideoError("\(path): cannot write header (\(ffmpegMessage(status)))") }
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        guard let frame else { throw VideoError("\(path): out of memory") }
        frame.pointee.format = cc.pointee.pix_fmt.rawValue
        frame.pointee.width = Int32(width); frame.pointee.height = Int32(height)
        guard av_frame_get_buffer(frame, 0) >= 0 else { throw VideoError("\(path): out of memory for a frame") }
        sws = sws_getContext(Int32(width), Int32(height), AV_PIX_FMT_RGB24, Int32(width), Int32(height), cc.pointee.pix_fmt,
                             SWS_BICUBIC, nil, nil, nil)
    }

    deinit {
        if !finished, format != nil { try? finish() }
        sws_freeContext(sws)
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        if let format {
            if format.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 { avio_closep(&format.pointee.pb) }
            avformat_free_context(format)
        }
    }

    /// Appends one RGB frame of `width * height * 3` bytes.
    public func append(rgb: UnsafePointer<UInt8>) throws {
        guard let frame, !finished else { throw VideoError("\(path): writer is finished") }
        guard av_frame_make_writable(frame) >= 0 else { throw VideoError("\(path): frame buffer not writable") }
        var src: [UnsafePointer<UInt8>?] = [rgb, nil, nil, nil]
        var srcStride: [Int32] = [Int32(width * 3), 0, 0, 0]
        let dst = withUnsafeMutablePointer(to: &frame.pointee.data) { $0.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { $0 } }
        let dstStride = withUnsafeMutablePointer(to: &frame.pointee.linesize) { $0.withMemoryRebound(to: Int32.self, capacity: 8) { $0 } }
        sws_scale(sws, &src, &srcStride, 0, Int32(height), dst, dstStride)
        frame.pointee.pts = nextPTS
        nextPTS += 1
        try send(frame)
    }

    public func append(rgb: [UInt8]) throws {
        precondition(rgb.count == width * height * 3, "frame has \(rgb.count) bytes, expected \(width * height * 3)")
        try rgb.withUnsafeBufferPointer { try append(rgb: $0.baseAddress!) }
    }

    private func send(_ f: UnsafeMutablePointer<AVFrame>?) throws {
        guard let codec, let packet, let format, let stream else { return }
        var status = avcodec_send_frame(codec, f)
        guard status >= 0 else { throw VideoError("\(path): encoder refused a frame (\(ffmpegMessage(status)))") }
        while true {
            status = avcodec_receive_packet(codec, packet)
            if status == maclr_AVERROR_EAGAIN() || status == maclr_AVERROR_EOF() { return }
            guard status >= 0 else { throw VideoError("\(path): encoding failed (\(ffmpegMessage(status)))") }
            av_packet_rescale_ts(packet, codec.pointee.time_base, stream.pointee.time_base)
            packet.pointee.stream_index = stream.pointee.index
            status = av_interleaved_write_frame(format, packet)
            guard status >= 0 else { throw VideoError("\(path): cannot write a packet (\(ffmpegMessage(status)))") }
        }
    }

    /// Flushes the encoder and writes the trailer. Further appends fail.
    public func finish() throws {
        guard !finished, let format else { return }
        finished = true
        try send(nil)
        let status = av_write_trailer(format)
        guard status >= 0 else { throw VideoError("\(path): cannot finish the file (\(ffmpegMessage(status)))") }
    }
}
