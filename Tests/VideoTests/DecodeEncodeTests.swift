import Foundation
import Video
import XCTest

/// Real files through FFmpeg: written by our encoder and by Debian's `ffmpeg` command.
final class DecodeEncodeTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if ProcessInfo.processInfo.environment["KEEP_VIDEO_TEST_FILES"] == nil { try? FileManager.default.removeItem(at: dir) } }

    /// Smooth frames (codec-friendly): colour ramps and a soft disc moving right.
    static func syntheticFrame(_ t: Int, width: Int, height: Int) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width {
            let dx = Double(x - (8 + 2 * t)), dy = Double(y - height / 2)
            let disc = max(0, 1 - (dx * dx + dy * dy) / 64)
            let i = (y * width + x) * 3
            f[i] = UInt8(min(255, 40 + 150 * Double(x) / Double(width) + 60 * disc))
            f[i + 1] = UInt8(min(255, 60 + 120 * Double(y) / Double(height)))
            f[i + 2] = UInt8(min(255, 100 + 100 * disc))
        }}
        return f
    }

    func meanAbsoluteDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Double where A.Element == UInt8, B.Element == UInt8 {
        var total = 0.0
        for (x, y) in zip(a, b) { total += abs(Double(x) - Double(y)) }
        return total / Double(a.count)
    }

    func write(_ name: String, codec: String?, frames: Int = 12, width: Int = 64, height: Int = 48, fps: Int = 10) throws -> String {
        let path = dir.appendingPathComponent(name).path
        let w = try VideoWriter(path: path, width: width, height: height, fps: fps, codec: codec)
        for t in 0..<frames { try w.append(rgb: Self.syntheticFrame(t, width: width, height: height)) }
        try w.finish()
        return path
    }

    func testOurEncoderRoundTripsInFourContainers() throws {
        // (file, codec, mean |error| allowed in 0..255 levels)
        let cases: [(String, String?, Double)] = [("a.mp4", nil, 4), ("b.avi", "mpeg4", 6), ("c.mkv", "ffv1", 2), ("d.avi", "mjpeg", 6)]
        for (name, codec, tolerance) in cases {
            let path = try write(name, codec: codec)
            let video = try VideoReader(path: path).decodeAll()
            XCTAssertEqual(video.frameCount, 12, name)
            XCTAssertEqual(video.width, 64, name); XCTAssertEqual(video.height, 48, name)
            XCTAssertEqual(video.fps, 10, accuracy: 0.01, name)
            for t in [0, 5, 11] {
                let mad = meanAbsoluteDifference(video.frame(t), Self.syntheticFrame(t, width: 64, height: 48))
                XCTAssertLessThan(mad, tolerance, "\(name) frame \(t)")
            }
            XCTAssertTrue(video.warnings.isEmpty, "\(name): \(video.warnings)")
        }
    }

    func ffmpeg(_ args: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        p.arguments = ["-hide_banner", "-loglevel", "error", "-y"] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "ffmpeg \(args.joined(separator: " "))")
        return data
    }

    func testFilesFromTheFFmpegCommandDecodeLikeFFmpegDecodesThem() throws {
        // (file, encoder arguments)
        let cases: [(String, [String])] = [("x.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
                                           ("y.avi", ["-c:v", "mpeg4", "-q:v", "3"]),
                                           ("z.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]),
                                           ("w.mkv", ["-c:v", "mjpeg", "-q:v", "3"])]
        for (name, codecArgs) in cases {
            let path = dir.appendingPathComponent(name).path
            _ = try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=15", "-frames:v", "20"] + codecArgs + [path])
            let reference = try ffmpeg(["-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            let video = try VideoReader(path: path).decodeAll()
            XCTAssertEqual(video.frameCount, 20, name)
            XCTAssertEqual(video.fps, 15, accuracy: 0.01, name)
            XCTAssertEqual(reference.count, 20 * 96 * 64 * 3, name)
            // Same decoder; only the YUV->RGB conversion settings may differ slightly.
            XCTAssertLessThan(meanAbsoluteDifference(video.pixels, reference), 2.0, name)
        }
    }

    func testResampleAndResize() throws {
        let path = try write("r.mp4", codec: nil, frames: 20, fps: 10)
        let half = try VideoReader(path: path).decodeAll(size: .shortSide(24), fps: 5)
        XCTAssertEqual(half.frameCount, 10)
        XCTAssertEqual(half.height, 24); XCTAssertEqual(half.width, 32)
        let double = try VideoReader(path: path).decodeAll(size: .fixed(width: 32, height: 32), fps: 20)
        XCTAssertEqual(double.frameCount, 40)
        XCTAssertEqual(double.width, 32)
        // At 20 fps from a 10 fps source, output frames 2k and 2k+1 show the same source frame.
        XCTAssertEqual(Array(double.frame(6)), Array(double.frame(7)))
        let capped = try VideoReader(path: path).decodeAll(maxFrames: 7)
        XCTAssertEqual(capped.frameCount, 7)
    }

    func testTruncatedAndNonVideoFilesGiveClearErrorsOrPartialFrames() throws {
        let text = dir.appendingPathComponent("notes.mp4")
        try "this is not a video".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try VideoReader(path: text.path).decodeAll()) { error in
            XCTAssertTrue("\(error)".hasPrefix(text.path + ": "), "\(error)")
        }
        XCTAssertThrowsError(try VideoReader(path: dir.appendingPathComponent("missing.mp4").path)) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
        // A Matroska file cut in the middle: the frames before the cut, with a warning.
        let path = try write("cut.mkv", codec: "mjpeg", frames: 30)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.appendingPathComponent("cut-half.mkv")
        try data.prefix(data.count / 2).write(to: cut)
        let partial = try VideoReader(path: cut.path).decodeAll()
        XCTAssertGreaterThan(partial.frameCount, 5)
        XCTAssertLessThan(partial.frameCount, 30)
        XCTAssertTrue(partial.warnings.contains { $0.contains("truncated") }, "\(partial.warnings)")
        // An AVI cut in the middle: a clear error naming the file, or the frames before the cut.
        let avi = try write("cut.avi", codec: "mpeg4", frames: 30)
        let aviData = try Data(contentsOf: URL(fileURLWithPath: avi))
        let cutAVI = dir.appendingPathComponent("cut-half.avi")
        try aviData.prefix(aviData.count / 2).write(to: cutAVI)
        do {
            let v = try VideoReader(path: cutAVI.path).decodeAll()
            XCTAssertLessThan(v.frameCount, 30)
        } catch {
            XCTAssertTrue("\(error)".hasPrefix(cutAVI.path + ": "), "\(error)")
        }
        // An MP4 whose index (moov, written last) is cut off cannot be opened: a clear error.
        let mp4 = try write("cut.mp4", codec: nil, frames: 30)
        let mp4Data = try Data(contentsOf: URL(fileURLWithPath: mp4))
        let cutMP4 = dir.appendingPathComponent("cut-half.mp4")
        try mp4Data.prefix(mp4Data.count / 2).write(to: cutMP4)
        XCTAssertThrowsError(try VideoReader(path: cutMP4.path).decodeAll()) { error in
            XCTAssertTrue("\(error)".hasPrefix(cutMP4.path + ": "), "\(error)")
        }
    }
}

/// Pictures through FFmpeg's own encoders: a PNG is lossless, a GIF keeps its frames.
final class PictureOutputTests: XCTestCase {
    func testAPNGReadsBackExactlyAndAGIFKeepsItsFrames() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pictures-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = 24, h = 16
        let frame = (0..<(w * h * 3)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let png = dir.appendingPathComponent("a.png").path
        let writer = try VideoWriter(path: png, width: w, height: h, fps: 1)
        try writer.append(rgb: frame)
        try writer.finish()
        let back = try VideoReader(path: png).decodeAll()
        XCTAssertEqual(back.frameCount, 1)
        XCTAssertEqual(back.pixels, frame, "PNG is lossless")

        let gif = dir.appendingPathComponent("a.gif").path
        let animated = try VideoWriter(path: gif, width: w, height: h, fps: 4)
        for k in 0..<3 { try animated.append(rgb: frame.map { $0 &+ UInt8(k * 60) }) }
        try animated.finish()
        let frames = try VideoReader(path: gif).decodeAll()
        XCTAssertEqual(frames.frameCount, 3)
        XCTAssertEqual(frames.width, w); XCTAssertEqual(frames.height, h)
    }
}
