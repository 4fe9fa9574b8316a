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
