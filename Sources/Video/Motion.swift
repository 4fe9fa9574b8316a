import Dispatch
import Foundation
import Tensor

/// Flow and motion representations computed from frames.
public enum Motion {
    /// Flow between consecutive frames (i -> i+1) of a video; the last frame gets zero flow, as in
    /// the shard format. Pairs are computed in parallel, one per thread; `levelTime` as `TVL1.flow`'s
    /// (called from those threads).
    public static func flows(_ frames: [GrayImage], tvl1: TVL1 = TVL1(),
                             levelTime: (@Sendable (_ width: Int, _ height: Int, _ seconds: Double) -> Void)? = nil) -> [FlowField] {
        guard let first = frames.first else { return [] }
        var out = [FlowField](repeating: FlowField(width: first.width, height: first.height), count: frames.count)
        let pairs = frames.count - 1
        guard pairs > 0 else { return out }
        out.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            parallelDynamic(pairs) { i in base[i] = tvl1.flow(frames[i], frames[i + 1], levelTime: levelTime) }
        }
        return out
    }

    /// round((f + bound) * 255 / (2 bound)), clipped to 0...255: the shard format's uint8 flow.
    @inline(__always)
    public static func quantize(_ f: Float, bound: Float) -> UInt8 {
        UInt8(max(0, min(255, ((f + bound) * 255 / (2 * bound)).rounded())))
    }

    @inline(__always)
    public static func dequantize(_ q: UInt8, bound: Float) -> Float {
        Float(q) * (2 * bound) / 255 - bound
    }

    /// Per-pixel |(u, v)|.
    public static func magnitude(_ f: FlowField) -> [Float] {
        zip(f.u, f.v).map { ($0 * $0 + $1 * $1).squareRoot() }
    }

    /// MCL's motion boundaries: Prewitt derivatives of each flow channel (normalised to per-pixel
    /// units, /6), the gradient magnitude of each channel, summed over u and v.
    public static func motionBoundaries(_ f: FlowField) -> [Float] {
        let gu = prewittMagnitude(f.u, f.width, f.height), gv = prewittMagnitude(f.v, f.width, f.height)
        return zip(gu, gv).map { $0 + $1 }
    }

    static func prewittMagnitude(_ a: [Float], _ w: Int, _ h: Int) -> [Float] {
        var out = [Float](repeating: 0, count: w * h)
        @inline(__always) func at(_ x: Int, _ y: Int) -> Float { a[min(max(y, 0), h - 1) * w + min(max(x, 0), w - 1)] }
        for y in 0..<h { for x in 0..<w {
            var gx: Float = 0, gy: Float = 0
            for d in -1...1 {
                gx += at(x + 1, y + d) - at(x - 1, y + d)
                gy += at(x + d, y + 1) - at(x + d, y - 1)
            }
            gx /= 6; gy /= 6
            out[y * w + x] = (gx * gx + gy * gy).squareRoot()
        }}
        return out
    }

    /// RGB frame difference (frame i+1 - frame i), per channel, the flow-free motion baseline;
    /// the last frame gets zeros. Input and output (F, H, W, 3); output in -255...255.
    public static func frameDifference(_ rgb: [UInt8], frames: Int, height: Int, width: Int) -> [Float] {
        let n = height * width * 3
        var out = [Float](repeating: 0, count: frames * n)
        for f in 0..<max(0, frames - 1) {
            for i in 0..<n { out[f * n + i] = Float(rgb[(f + 1) * n + i]) - Float(rgb[f * n + i]) }
        }
        return out
    }
}
