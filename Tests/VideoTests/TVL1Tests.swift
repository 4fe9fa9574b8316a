import Foundation
import Video
import XCTest

/// TV-L1 on textured frames with known sub-pixel motion.
final class TVL1Tests: XCTestCase {
    /// A smooth random texture: a sum of sinusoids, evaluable at any real position, so the
    /// second frame is sampled exactly at the displaced positions (no interpolation error).
    struct Texture {
        var waves: [(Float, Float, Float, Float)] = []   // (kx, ky, phase, amplitude)
        init(seed: UInt64) {
            var state = seed
            func next() -> Float { state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(state >> 40) / Float(1 << 24) }
            for _ in 0..<24 {
                let angle = next() * 2 * .pi, freq = 0.15 + 0.5 * next()
                waves.append((freq * cos(angle), freq * sin(angle), next() * 2 * .pi, 10 + 20 * next()))
            }
        }
        func value(_ x: Float, _ y: Float) -> Float {
            waves.reduce(128) { $0 + $1.3 * sin($1.0 * x + $1.1 * y + $1.2) }
        }
        func image(width: Int, height: Int, _ map: (Float, Float) -> (Float, Float) = { ($0, $1) }) -> GrayImage {
            var p = [Float](repeating: 0, count: width * height)
            for y in 0..<height { for x in 0..<width {
                let (sx, sy) = map(Float(x), Float(y))
                p[y * width + x] = value(sx, sy)
            }}
            return GrayImage(width: width, height: height, pixels: p)
        }
    }

    /// Mean end-point error over the interior (a border where content leaves the frame is excluded).
    func endPointError(_ f: FlowField, border: Int, _ truth: (Int, Int) -> (Float, Float)) -> Float {
        var total: Float = 0
        var n = 0
        for y in border..<(f.height - border) { for x in border..<(f.width - border) {
            let (tu, tv) = truth(x, y)
            let k = y * f.width + x
            total += ((f.u[k] - tu) * (f.u[k] - tu) + (f.v[k] - tv) * (f.v[k] - tv)).squareRoot(); n += 1
        }}
        return total / Float(n)
    }

    func testSubPixelTranslation() {
        let tex = Texture(seed: 1)
        let (du, dv): (Float, Float) = (0.4, -0.7)
        // I1(x) = I0(x - d): content moves by d from frame 0 to frame 1.
        let i0 = tex.image(width: 64, height: 64), i1 = tex.image(width: 64, height: 64) { ($0 - du, $1 - dv) }
        let flow = TVL1().flow(i0, i1)
        let epe = endPointError(flow, border: 6) { _, _ in (du, dv) }
        print("TV-L1 translation (0.4, -0.7) px: mean EPE \(epe)")
        XCTAssertLessThan(epe, 0.1, "translation EPE \(epe)")
    }

    func testSubPixelRotation() {
        let tex = Texture(seed: 2)
        let angle: Float = 2 * .pi / 180, c: Float = 31.5
        // Frame 1 shows frame 0 rotated by `angle` about the centre: I1(R(x-c)+c) = I0(x).
        let rotateBack = { (x: Float, y: Float) -> (Float, Float) in
            let dx = x - c, dy = y - c
            return (cos(angle) * dx + sin(angle) * dy + c, -sin(angle) * dx + cos(angle) * dy + c)
        }
        let i0 = tex.image(width: 64, height: 64), i1 = tex.image(width: 64, height: 64, rotateBack)
        let flow = TVL1().flow(i0, i1)
        let epe = endPointError(flow, border: 8) { x, y in
            let dx = Float(x) - c, dy = Float(y) - c
            return (cos(angle) * dx - sin(angle) * dy - dx, sin(angle) * dx + cos(angle) * dy - dy)
        }
        print("TV-L1 rotation 2 degrees: mean EPE \(epe)")
        XCTAssertLessThan(epe, 0.1, "rotation EPE \(epe)")
    }

    func testStillFramesGiveZeroFlow() {
        let img = Texture(seed: 3).image(width: 40, height: 32)
        let flow = TVL1().flow(img, img)
        XCTAssertLessThan(flow.u.map(abs).max()! + flow.v.map(abs).max()!, 1e-3)
    }
}
