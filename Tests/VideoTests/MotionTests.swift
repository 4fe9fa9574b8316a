import Foundation
import Video
import XCTest

final class MotionTests: XCTestCase {
    func testQuantizationFollowsTheShardFormat() {
        XCTAssertEqual(Motion.quantize(0, bound: 20), 128)        // round(127.5) = 128
        XCTAssertEqual(Motion.quantize(-20, bound: 20), 0)
        XCTAssertEqual(Motion.quantize(20, bound: 20), 255)
        XCTAssertEqual(Motion.quantize(35, bound: 20), 255)       // clipped
        XCTAssertEqual(Motion.quantize(-1000, bound: 20), 0)
        for f: Float in [-7.3, 0.2, 13.9] {
            XCTAssertEqual(Motion.dequantize(Motion.quantize(f, bound: 20), bound: 20), f, accuracy: 40 / 255 / 2 + 1e-5)
        }
    }

    func testMotionBoundariesMarkTheEdgeOfAMovingRegion() {
        // u = 3 inside a square, 0 outside: boundaries only on the square's edge.
        let w = 12, h = 12
        var f = FlowField(width: w, height: h)
        for y in 4..<8 { for x in 4..<8 { f.u[y * w + x] = 3 } }
        let mb = Motion.motionBoundaries(f)
        XCTAssertEqual(mb[0], 0)                       // far outside
        XCTAssertEqual(mb[6 * w + 5], 0, accuracy: 1e-6)   // (x 5, y 6): inside, every neighbour has u = 3
        XCTAssertGreaterThan(mb[5 * w + 3], 0.9)       // left edge, just outside: gx = (3+3+3)/6 = 1.5
        XCTAssertEqual(mb[5 * w + 3], 1.5, accuracy: 1e-6)
        // magnitude of (3, 4) is 5
        var g = FlowField(width: 1, height: 1); g.u[0] = 3; g.v[0] = 4
        XCTAssertEqual(Motion.magnitude(g)[0], 5)
    }

    func testFrameDifferenceAndParallelFlows() {
        let rgb: [UInt8] = [10, 20, 30, 15, 18, 40]   // 2 frames of 1x1
        XCTAssertEqual(Motion.frameDifference(rgb, frames: 2, height: 1, width: 1), [5, -2, 10, 0, 0, 0])
        // Flows of a video: consecutive pairs, zeros for the last frame, same as pairwise calls.
        func frame(_ t: Int) -> GrayImage {
            var p = [Float](repeating: 0, count: 576)
            for i in 0..<576 {
                let phase: Float = 0.5 * Float(i % 24 - t) + 0.3 * Float(i / 24)
                p[i] = 128 + 60 * sin(phase)
            }
            return GrayImage(width: 24, height: 24, pixels: p)
        }
        let frames = (0..<4).map(frame)
        let flows = Motion.flows(frames)
        XCTAssertEqual(flows.count, 4)
        XCTAssertEqual(flows[1].u, TVL1().flow(frames[1], frames[2]).u)
        XCTAssertEqual(flows[3].u.map(abs).max(), 0)
    }
}
