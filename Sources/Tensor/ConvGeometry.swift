import Foundation

/// Sizes of one 3-D convolution, channels-last: input (N, T, H, W, C), weight (O, kT, kH, kW, C),
/// output (N, oT, oH, oW, O). A 2-D convolution is kT = 1.
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public let n: Int, t: Int, h: Int, w: Int, c: Int, o: Int
    public let kernel: [Int], stride: [Int], padding: [Int]
    public let outT: Int, outH: Int, outW: Int

    public init(input: [Int], weight: [Int], stride: [Int], padding: [Int]) {
        precondition(input.count == 5, "conv3d input must be (N, T, H, W, C), got \(input)")
        precondition(weight.count == 5, "conv3d weight must be (O, kT, kH, kW, C), got \(weight)")
        precondition(input[4] == weight[4], "conv3d: input has \(input[4]) channels, weight expects \(weight[4])")
        n = input[0]; t = input[1]; h = input[2]; w = input[3]; c = input[4]; o = weight[0]
        kernel = Array(weight[1...3]); self.stride = stride; self.padding = padding
        outT = (t + 2 * padding[0] - kernel[0]) / stride[0] + 1
        outH = (h + 2 * padding[1] - kernel[1]) / stride[1] + 1
        outW = (w + 2 * padding[2] - kernel[2]) / stride[2] + 1
        precondition(outT > 0 && outH > 0 && outW > 0, "conv3d: input \(input) too small for kernel \(kernel)")
    }

    public var inputShape: [Int] { [n, t, h, w, c] }
    public var weightShape: [Int] { [o] + kernel + [c] }
    public var outputShape: [Int] { [n, outT, outH, outW, o] }
    /// Output positions per sample, and columns of the im2col matrix.
    public var rowsPerSample: Int { outT * outH * outW }
    public var columns: Int { kernel.reduce(1, *) * c }
    /// 1x1x1, stride 1, no padding: the input already is the column matrix.
    public var isPointwise: Bool { kernel == [1, 1, 1] && stride == [1, 1, 1] && padding == [0, 0, 0] }
    /// A (kT, 1, 1) conv at stride 1 over time only (R(2+1)D's temporal convs): channels-last, each
    /// temporal tap is a GEMM reading whole frames of the input in place, so no im2col is needed.
    /// Worth it when a sample's frames make a GEMM tall enough for OpenBLAS to run at speed.
    public var isTemporalOnly: Bool {
        kernel[0] > 1 && kernel[1] == 1 && kernel[2] == 1 && stride == [1, 1, 1] && padding[1] == 0 && padding[2] == 0
            && outT * h * w >= 256
    }
    /// The temporal taps i whose input frame ot*sT - pT + i lies inside the clip, for output
    /// frame `ot`: the others read only padding (zeros).
    func liveTemporalTaps(outFrame ot: Int) -> Range<Int> {
        let first = ot * stride[0] - padding[0]
        let lo = max(0, -first), hi = min(kernel[0], t - first)
        return lo..<max(lo, hi)
    }

    /// The im2col columns of temporal taps `taps`: column order (kt, kh, kw, c) keeps each tap's
    /// kH*kW*C columns together.
    func columns(temporalTaps taps: Range<Int>) -> Range<Int> {
        let perTap = kernel[1] * kernel[2] * c
        return (taps.lowerBound * perTap)..<(taps.upperBound * perTap)
    }

    /// Output frames `ot` of temporal tap `i` whose input frame `ot - pT + i` lies inside the clip
    /// (stride 1).
    func validFrames(tap i: Int) -> Range<Int> {
        let lo = max(0, padding[0] - i), hi = min(outT, t + padding[0] - i)
        return lo..<max(lo, hi)
    }

    /// Forward multiply-accumulates, counting every tap (nominal) or only taps inside the input.
    public var macs: (nominal: Int, valid: Int) {
        func valid(_ size: Int, _ out: Int, _ k: Int, _ s: Int, _ p: Int) -> Int {
            var total = 0
            for i in 0..<out { for j in 0..<k where (0..<size).contains(i * s - p + j) { total += 1 } }
            return total
        }
        let nominal = n * rowsPerSample * o * columns
        let v = n * o * c * valid(t, outT, kernel[0], stride[0], padding[0]) * valid(h, outH, kernel[1], stride[1], padding[1])
            * valid(w, outW, kernel[2], stride[2], padding[2])
        return (nominal, v)
    }

    public var description: String {
        "\(c)->\(o) k\(kernel.map(String.init).joined(separator: "x")) s\(stride.map(String.init).joined(separator: "x")) in \(n)x\(t)x\(h)x\(w)"
    }
}

/// An output position (n, ot, oh, ow) of a conv or pooling, stepped row by row in im2col order,
/// so narrow layers pay no division or overflow check per row.
struct OutputPosition {
    var n: Int, ot: Int, oh: Int, ow: Int

    init(row: Int, outT: Int, outH: Int, outW: Int) {
        let perSample = outT * outH * outW
        var rem = row % perSample
        n = row / perSample
        ot = rem / (outH * outW); rem %= outH * outW
        oh = rem / outW; ow = rem % outW
    }

    init(row: Int, _ g: ConvGeometry) { self.init(row: row, outT: g.outT, outH: g.outH, outW: g.outW) }

    @inline(__always)
    mutating func advance(outT: Int, outH: Int, outW: Int) {
        ow &+= 1
        if ow == outW {
            ow = 0; oh &+= 1
            if oh == outH { oh = 0; ot &+= 1; if ot == outT { ot = 0; n &+= 1 } }
        }
    }
}

/// Splits `rows` (output positions counted over all samples) into stretches of consecutive
/// rows whose output frames read the same live temporal taps (`liveTemporalTaps`), and calls
/// `body(stretch, taps)` for each. With a 3-frame kernel padded by one, a clip's first and last
/// output frames read one tap less: a third of their multiply-adds (of all of them on R3D-18's
/// one-frame last layer) would only add zeros.
func forEachLiveTapStretch(_ g: ConvGeometry, rows: Range<Int>, _ body: (_ rows: Range<Int>, _ taps: Range<Int>) -> Void) {
    let frameRows = g.outH * g.outW
    func taps(_ row: Int) -> Range<Int> { g.liveTemporalTaps(outFrame: row / frameRows % g.outT) }
    var start = rows.lowerBound
    while start < rows.upperBound {
        let live = taps(start)
        var end = start
        repeat { end = min(rows.upperBound, (end / frameRows + 1) * frameRows) } while end < rows.upperBound && taps(end) == live
        body(start..<end, live)
        start = end
    }
}
