import Foundation
import Video
import XCTest

/// The synthetic benchmark's classes must be the motion they are named after, measured by
/// TV-L1 on rendered frames with a still background.
final class SyntheticMotionTests: XCTestCase {
    /// Mean flow (u, v), curl and divergence over the pixels that move, averaged over `videos`
    /// videos of class `label`: frames 0 -> 1 and 7 -> 8 of each.
    func motionStatistics(label: Int, videos: Int = 3) -> (u: Float, v: Float, curl: Float, divergence: Float) {
        var generator = SyntheticMotion()
        generator.size = 48; generator.frames = 9; generator.backgroundDrift = 0
        let n = generator.size
        var sums: (u: Float, v: Float, curl: Float, div: Float, count: Float) = (0, 0, 0, 0, 0)
        for video in 0..<videos {
            let pixels = generator.render(label: label, seed: UInt64(100 + video), train: true)
            for t in [0, 7] {
                let frame = { (i: Int) in GrayImage(rgb: pixels[(i * n * n * 3)..<((i + 1) * n * n * 3)], width: n, height: n) }
                let f = TVL1().flow(frame(t), frame(t + 1))
                for y in 1..<(n - 1) { for x in 1..<(n - 1) {
                    let i = y * n + x
                    guard f.u[i] * f.u[i] + f.v[i] * f.v[i] > 0.0025 else { continue }
                    sums.u += f.u[i]; sums.v += f.v[i]
                    sums.curl += (f.v[i + 1] - f.v[i - 1]) / 2 - (f.u[i + n] - f.u[i - n]) / 2
                    sums.div += (f.u[i + 1] - f.u[i - 1]) / 2 + (f.v[i + n] - f.v[i - n]) / 2
                    sums.count += 1
                }}
            }
        }
        let c = max(sums.count, 1)
        return (sums.u / c, sums.v / c, sums.curl / c, sums.div / c)
    }

    func testEachClassMovesAsItsNameSays() {
        let index = { (name: String) in SyntheticMotion.patterns.firstIndex(of: name)! }
        // Translation: 1.75 s px per frame at 64 px, s in 0.6...1.2, so 0.8-1.6 px at 48 px; TV-L1
        // (lambda 0.15, median filter) smooths small objects' motion into their surroundings,
        // so the mean over moving pixels comes out at about half of that.
        let right = motionStatistics(label: index("right")), left = motionStatistics(label: index("left"))
        let up = motionStatistics(label: index("up")), down = motionStatistics(label: index("down"))
        XCTAssertGreaterThan(right.u, 0.3); XCTAssertLessThan(left.u, -0.3)
        XCTAssertLessThan(up.v, -0.3); XCTAssertGreaterThan(down.v, 0.3)
        for m in [right, left] { XCTAssertLessThan(abs(m.v), abs(m.u) / 2) }
        for m in [up, down] { XCTAssertLessThan(abs(m.u), abs(m.v) / 2) }
        // Clockwise on screen (y down) is a positive curl; zooming in, a positive divergence. TV-L1
        // sees little of a small object's rotation or scaling: only their signs are checked.
        let cw = motionStatistics(label: index("rotate_cw")), ccw = motionStatistics(label: index("rotate_ccw"))
        XCTAssertGreaterThan(cw.curl, 0.003); XCTAssertLessThan(ccw.curl, -0.003)
        let zoomIn = motionStatistics(label: index("zoom_in")), zoomOut = motionStatistics(label: index("zoom_out"))
        XCTAssertGreaterThan(zoomIn.divergence, 0.002); XCTAssertLessThan(zoomOut.divergence, -0.002)
        print("synthetic motion: right u \(right.u), left u \(left.u), up v \(up.v), down v \(down.v), cw curl \(cw.curl), ccw curl \(ccw.curl), zoom in div \(zoomIn.divergence), out div \(zoomOut.divergence)")
    }

    func testRenderingIsAFunctionOfTheSeed() {
        let g = SyntheticMotion()
        XCTAssertEqual(g.render(label: 2, seed: 7, train: true), g.render(label: 2, seed: 7, train: true))
        XCTAssertNotEqual(g.render(label: 2, seed: 7, train: true), g.render(label: 2, seed: 8, train: true))
    }
}

/// Scene bias in part, and real footage behind the objects.
final class SyntheticBackgroundTests: XCTestCase {
    func testPartialSceneBiasHuesAboutThatFractionOfTrainingVideosAndNoTestVideo() {
        var g = SyntheticMotion()
        g.sceneBiasFraction = 0.8
        let biased = (0..<400).filter { g.hasBiasedBackground(seed: UInt64($0), train: true) }.count
        XCTAssertEqual(Double(biased) / 400, 0.8, accuracy: 0.06)
        XCTAssertFalse((0..<400).contains { g.hasBiasedBackground(seed: UInt64($0), train: false) })
        g.sceneBias = true
        XCTAssertTrue((0..<400).allSatisfy { g.hasBiasedBackground(seed: UInt64($0), train: true) })
        // the same video with and without its hue: the objects are the same, the background not
        g.size = 32; g.frames = 3; g.objectsPerVideo = 0
        let seed = (0..<50).map(UInt64.init).first { g.hasBiasedBackground(seed: $0, train: true) }!
        var plain = g; plain.sceneBiasFraction = 0
        XCTAssertNotEqual(g.render(label: 1, seed: seed, train: true), plain.render(label: 1, seed: seed, train: true))
        XCTAssertEqual(g.render(label: 1, seed: seed, train: false), plain.render(label: 1, seed: seed, train: false))
    }

    /// With no objects, a video is a window of consecutive frames of one background clip
    /// (looping when the clip is shorter than the video).
    func testAVideoIsAWindowOfItsBackgroundClip() {
        let n = 16, clipFrames = 5
        // frame t: every pixel (t, x, y) so any frame and position is identifiable
        var pixels = [UInt8](repeating: 0, count: clipFrames * n * n * 3)
        for t in 0..<clipFrames { for y in 0..<n { for x in 0..<n {
            let p = ((t * n + y) * n + x) * 3
            pixels[p] = UInt8(40 * t); pixels[p + 1] = UInt8(x * 8); pixels[p + 2] = UInt8(y * 8)
        }}}
        var g = SyntheticMotion()
        g.size = n; g.frames = 8; g.objectsPerVideo = 0
        g.backgrounds = [DecodedVideo(pixels: pixels, frameCount: clipFrames, height: n, width: n, fps: 16)]
        let video = g.render(label: 0, seed: 3, train: true)
        let frame = n * n * 3
        let start = (0..<clipFrames).first { Array(video[0..<frame]) == Array(pixels[($0 * frame)..<(($0 + 1) * frame)]) }
        XCTAssertNotNil(start, "frame 0 is a frame of the clip")
        for t in 0..<8 {
            let k = (start! + t) % clipFrames
            XCTAssertEqual(Array(video[(t * frame)..<((t + 1) * frame)]), Array(pixels[(k * frame)..<((k + 1) * frame)]), "frame \(t)")
        }
    }

    func testBackgroundsLoadFromAFolderCroppedAndResampledSkippingWhatDoesNotDecode() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("backgrounds-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let w = 64, h = 48
        let writer = try VideoWriter(path: dir.appendingPathComponent("sub/pan.mp4").path, width: w, height: h, fps: 8)
        for t in 0..<16 {
            let frame = (0..<(w * h * 3)).map { UInt8(truncatingIfNeeded: ($0 / 3 % w) * 4 + t * 8) }
            try frame.withUnsafeBufferPointer { try writer.append(rgb: $0.baseAddress!) }
        }
        try writer.finish()
        try Data("not a video".utf8).write(to: dir.appendingPathComponent("broken.mp4"))
        let loaded = try SyntheticMotion.loadBackgrounds(folder: dir, size: 32, fps: 16)
        XCTAssertEqual(loaded.clips.count, 1)
        XCTAssertEqual(loaded.clips[0].width, 32); XCTAssertEqual(loaded.clips[0].height, 32)
        XCTAssertEqual(loaded.clips[0].frameCount, 32, "2 s at 8 fps resampled to 16 fps")
        XCTAssertEqual(loaded.warnings.count, 1)
        XCTAssertTrue(loaded.warnings[0].contains("broken.mp4"), loaded.warnings[0])
        XCTAssertThrowsError(try SyntheticMotion.loadBackgrounds(folder: dir.appendingPathComponent("sub/none"), size: 32, fps: 16))
    }
}
