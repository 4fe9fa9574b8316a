import Foundation

/// Sizes of one 3-D convolution, channels-last: input (N, T, H, W, C), weight (O, kT, kH, kW, C),
/// output (N, oT, oH, oW, O). A 2-D convolution is kT = 1.
public struct ConvGeometry: Equatable, Sendable, CustomStringConvertible {
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
        "\(c)->\(o) k\(kernel.map(String.init).joined(separator: "x")) s\(stride.map(String.init).joined(separator: "x")) in \(t)x\(h)x\(w)"
    }
}

/// The shape of one sgemm call, row-major as `sgemm` takes it.
public struct GEMMShape: Hashable, Sendable {
    public var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// Conv FLOP and time bookkeeping for benchmarks, off unless `enabled`: per conv shape and
/// direction, the whole kernel's time and the part spent inside sgemm (the rest is im2col,
/// col2im and zeroing), with the GEMM shapes called, so a benchmark can time a bare sgemm of
/// the same shapes beside them.
public enum ConvStats {
    public struct Entry: Sendable {
        public var calls = 0, seconds = 0.0, flops = 0.0
        public var gemmSeconds = 0.0
        public var gemms: [GEMMShape: Int] = [:]
    }
    nonisolated(unsafe) public static var enabled = false
    /// Keyed by "fwd|dx|dw geometry".
    nonisolated(unsafe) public static var entries: [String: Entry] = [:]
    nonisolated(unsafe) public static var validMACs = 0
    nonisolated(unsafe) public static var nominalMACs = 0
    nonisolated(unsafe) static var current: String?

    public static func reset() { entries = [:]; validMACs = 0; nominalMACs = 0 }

    @inline(__always)
    static func time(_ kind: String, _ g: ConvGeometry, _ body: () -> Void) {
        guard enabled else { body(); return }
        let key = "\(kind) \(g)"
        current = key
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        current = nil
        var e = entries[key] ?? Entry()
        e.calls += 1; e.seconds += seconds; e.flops += 2 * Double(g.macs.nominal)
        entries[key] = e
    }

    static func recordGEMM(_ shape: GEMMShape, seconds: Double) {
        guard let current else { return }
        var e = entries[current] ?? Entry()
        e.gemmSeconds += seconds
        e.gemms[shape, default: 0] += 1
        entries[current] = e
    }
}

/// One GEMM of a conv kernel: `sgemm`, timed into ConvStats when it is enabled.
@inline(__always)
func convGEMM(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
              _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    convGEMMTimed(GEMMShape(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc)) {
        sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
}

/// Runs `body`, a product of `shape` (possibly fused with the im2col that feeds it), timed into
/// ConvStats when it is enabled.
@inline(__always)
func convGEMMTimed(_ shape: @autoclosure () -> GEMMShape, _ body: () -> Void) {
    guard ConvStats.enabled else { body(); return }
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    ConvStats.recordGEMM(shape(), seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

/// Seconds of one bare sgemm of `shape` on buffers of its own by `backend` (median of `repeats`
/// after a warm-up), split across the engine's threads as `sgemm` does: what a conv's GEMMs
/// are compared with.
public func timeBareGEMM(_ shape: GEMMShape, backend: Engine.GEMMBackend = .openblas, repeats: Int = 5) -> Double {
    let rowsA = shape.transA ? shape.k : shape.m, rowsB = shape.transB ? shape.n : shape.k
    let a = Storage(uninitialized: rowsA * shape.lda), b = Storage(uninitialized: rowsB * shape.ldb)
    let c = Storage(zeros: shape.m * shape.ldc)
    for i in 0..<a.count { a.pointer[i] = Float(i % 7) * 0.1 }
    for i in 0..<b.count { b.pointer[i] = Float(i % 5) * 0.1 }
    let saved = Engine.gemm
    Engine.gemm = backend
    defer { Engine.gemm = saved }
    var times: [Double] = []
    for r in 0...repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        sgemm(shape.transA, shape.transB, shape.m, shape.n, shape.k, 1, a.pointer, shape.lda, b.pointer, shape.ldb, 0, c.pointer, shape.ldc)
        if r > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
    }
    return times.sorted()[times.count / 2]
}

/// How many samples' im2col rows fit the column buffer budget (at least one).
private func samplesPerChunk(_ g: ConvGeometry) -> Int {
    let budgetFloats = 32 << 20  // 128 MiB
    return max(1, min(g.n, budgetFloats / max(1, g.rowsPerSample * g.columns)))
}

/// cols (rows x kT*kH*kW*C) for `samples`, row = (n, ot, oh, ow), column = (kt, kh, kw, c).
func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, samples: Range<Int>, _ cols: UnsafeMutablePointer<Float>) {
    let first = samples.lowerBound * g.rowsPerSample
    parallelFor(samples.count * g.rowsPerSample, minPerThread: 512) { s, e in
        im2colRows(x, g, rows: (first + s)..<(first + e), cols + s * g.columns)
    }
}

/// An output position (n, ot, oh, ow) of a conv or pooling, stepped row by row in im2col order:
/// the divisions and overflow checks per row had cost more than the copies on narrow layers.
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

/// Walks the im2col rows `rows` (output positions counted over all samples) in column order,
/// run by run: `body(input, count)` for each run of `count` columns that read the input
/// elements at input..<input+count of (N, T, H, W, C) data, or nil where the run lies in the
/// padding. Column order is (kt, kh, kw, c); a kernel row inside the input is one run of kW*C.
@inline(__always)
func forEachIm2colRun(_ g: ConvGeometry, rows: Range<Int>, _ body: (_ input: Int?, _ count: Int) -> Void) {
    guard !rows.isEmpty else { return }
    let c = g.c
    let (kt, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
    let (st, sh, sw) = (g.stride[0], g.stride[1], g.stride[2])
    let (pt, ph, pw) = (g.padding[0], g.padding[1], g.padding[2])
    let (t, h, w, outT, outH, outW) = (g.t, g.h, g.w, g.outT, g.outH, g.outW)
    var p = OutputPosition(row: rows.lowerBound, g)
    for _ in rows {
        let w0 = p.ow &* sw &- pw
        let inside = w0 >= 0 && w0 &+ kw <= w
        for i in 0..<kt {
            let ti = p.ot &* st &- pt &+ i
            for j in 0..<kh {
                let hi = p.oh &* sh &- ph &+ j
                if ti < 0 || ti >= t || hi < 0 || hi >= h { body(nil, kw &* c); continue }
                let rowBase = ((p.n &* t &+ ti) &* h &+ hi) &* w &* c
                if inside { body(rowBase &+ w0 &* c, kw &* c); continue }
                for l in 0..<kw {
                    let wi = w0 &+ l
                    body(wi < 0 || wi >= w ? nil : rowBase &+ wi &* c, c)
                }
            }
        }
        p.advance(outT: outT, outH: outH, outW: outW)
    }
}

/// Copies `count` floats: short runs (a narrow layer's kernel row, 2-64 values) inline, with
/// vector moves (the last one overlapping) from 8 on, instead of a call to memmove per run.
@inline(__always)
func copyFloats(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    typealias V16 = SIMD16<Float>
    typealias V8 = SIMD8<Float>
    let from = UnsafeRawPointer(src), to = UnsafeMutableRawPointer(dst)
    if count >= 16 && count <= 64 {
        var q = 0
        while q &+ 16 < count { to.storeBytes(of: from.loadUnaligned(fromByteOffset: q &* 4, as: V16.self), toByteOffset: q &* 4, as: V16.self); q &+= 16 }
        let last = (count &- 16) &* 4
        to.storeBytes(of: from.loadUnaligned(fromByteOffset: last, as: V16.self), toByteOffset: last, as: V16.self)
    } else if count >= 8 && count < 16 {
        to.storeBytes(of: from.loadUnaligned(as: V8.self), as: V8.self)
        let last = (count &- 8) &* 4
        to.storeBytes(of: from.loadUnaligned(fromByteOffset: last, as: V8.self), toByteOffset: last, as: V8.self)
    } else if count < 8 {
        for q in 0..<count { dst[q] = src[q] }
    } else {
        dst.update(from: src, count: count)
    }
}

/// The im2col rows `rows` (output positions counted over all samples) into `cols`, one thread.
func im2colRows(_ x: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>, _ cols: UnsafeMutablePointer<Float>) {
    var dst = cols
    forEachIm2colRun(g, rows: rows) { input, count in
        if let input { copyFloats(x + input, dst, count) } else { dst.update(repeating: 0, count: count) }
        dst += count
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

/// The im2col columns the whole-matrix paths multiply for `rows`: only the live taps' when every
/// row reads the same taps (R3D-18's one-frame last layer, 2/3 of whose multiply-adds read
/// padding), else all. (Per stretch of frames, R3D-18's two-frame layer ran 16 GEMMs of 64 rows
/// no faster than one over all of them.)
func uniformLiveColumns(_ g: ConvGeometry, rows: Range<Int>) -> Range<Int> {
    var stretches: [Range<Int>] = []
    forEachLiveTapStretch(g, rows: rows) { _, taps in stretches.append(taps) }
    return stretches.count == 1 ? g.columns(temporalTaps: stretches[0]) : 0..<g.columns
}

/// Whether a conv's forward, input and weight gradients handle im2col block by block
/// (`Engine.fusedConv`):
/// only where the output rows outnumber the weights' columns well (8 x), or half as well when
/// the conv pads over time, so that some frames' taps read only padding, which the blocked
/// paths skip frame by frame (`maclr bench conv`, 2 threads: R3D-18's 256->256 3x3x3 at 2x8x8
/// fwd/dx/dw 9.5/8.2/10.1 vs 10.8/10.0/10.3 ms; R(2+1)D-18's 576->256 3x1x1 at stride 2, 4.5/4.2/4.8
/// vs 5.0/4.9/4.7). The forward packs the weights once, on one thread, which is what the deepest
/// layers (128 rows, 1152 channels) would spend their time on; their im2col matrices are small
/// anyway.
func usesFusedIm2col(_ g: ConvGeometry) -> Bool {
    Engine.fusedConv && !g.isPointwise && !g.isTemporalOnly && g.n * g.rowsPerSample >= (g.padding[0] > 0 ? 4 : 8) * g.o
}

/// y (rows x O) = im2col(x) W^T without the im2col matrix: each thread expands blocks of
/// `PackedGEMM.mc` rows into a buffer that stays in L2 and multiplies it at once by W^T, packed
/// once for all blocks. The whole matrix (up to 150 MB on R(2+1)D-18's first layers) was
/// written to memory and read back.
func fusedIm2colForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let k = g.columns, rows = g.n * g.rowsPerSample, block = PackedGEMM.mc
    let weights = PackedGEMM.PackedB(true, wt, k, k: k, n: g.o)
    let blocks = (rows + block - 1) / block
    parallelClaims(blocks, grain: claimGrain(blocks)) { claims in
        let buffer = Storage(uninitialized: block * k)
        for claimed in claims {
            for b in claimed {
                let r0 = b * block, r1 = min(rows, r0 + block)
                im2colRows(x, g, rows: r0..<r1, buffer.pointer)
                // Taps that read only padding skipped (their columns are zeros).
                forEachLiveTapStretch(g, rows: r0..<r1) { rows, taps in
                    PackedGEMM.multiply(false, rows.count, 1, buffer.pointer + (rows.lowerBound - r0) * k, k, weights,
                                        depth: g.columns(temporalTaps: taps), accumulate: false, y + rows.lowerBound * g.o, g.o)
                }
            }
        }
    }
}

/// Whether the forward runs as an implicit GEMM (`implicitConvForward`): a blocked-im2col conv
/// whose kernel rows (kW*C values) fit one depth slice of the packed weights, and where it
/// measured faster (`maclr bench conv`, 1x3x3 convs at 28x28, 2 threads): from 24 input channels
/// on (32->32: 3.1 vs 4.0 ms, 64->32: 5.5 vs 8.0), for at most 16 output channels (the stems,
/// 3->11 7x7: 2.2 vs 3.4 ms) and strided convs (16->57: 0.91 vs 1.02 ms). Blocked im2col stays
/// faster for 8-16 input channels at stride 1 (16->32: 2.2 vs 1.6 ms): its 12-row tiles beat the
/// implicit 8-row ones, and expanding so few channels costs little.
func usesImplicitForward(_ g: ConvGeometry) -> Bool {
    guard Engine.implicitConv, usesFusedIm2col(g), g.kernel[2] * g.c <= PackedGEMM.kc else { return false }
    return g.c >= 24 || g.o <= 16 || g.stride[1] > 1 || g.stride[2] > 1
}

/// y (rows x O) = im2col(x) W^T with no im2col row written: each tile of `PackedGEMM.indirectRows` output
/// positions reads its kT*kH input runs of kW*C values where they lie (`PackedGEMM.indirectTile`),
/// through a table of pointers: runs in the padding point at zeros; only a run cut by the left
/// or right border is assembled in a small buffer. On the quickstart's narrow layers (3-16
/// channels) writing and re-reading the im2col block cost more than the multiply-adds.
func implicitConvForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let run = g.kernel[2] * g.c, k = g.columns
    // Slices of whole runs, so a run never straddles two.
    let weights = PackedGEMM.PackedB(true, wt, k, k: k, n: g.o, sliceDepth: PackedGEMM.kc / run * run)
    implicitGEMM(rows: g.n * g.rowsPerSample, run: run, weights, y, assembled: true) { rows, pointers, zeros, border in
        pointRuns(x, g, rows: rows, pointers, zeros: zeros, border: border)
    }
}

/// out (rows x n) = A B, B packed in slices of whole runs and A's rows made of runs of `run`
/// values read through pointers: each thread takes tiles of `PackedGEMM.indirectRows` rows and
/// has `point` fill the tile's table (`pointers[segment * indirectRows + i]` for row i; rows
/// past the end may point anywhere readable), handing it a run of zeros and, with `assembled`,
/// room for one assembled run per table entry.
func implicitGEMM(rows: Int, run: Int, _ weights: PackedGEMM.PackedB, _ out: UnsafeMutablePointer<Float>, assembled: Bool,
                  point: (_ rows: Range<Int>, _ pointers: UnsafeMutablePointer<UnsafePointer<Float>>,
                          _ zeros: UnsafePointer<Float>, _ border: UnsafeMutablePointer<Float>) -> Void) {
    let mr = PackedGEMM.indirectRows, nr = PackedGEMM.nr, k = weights.k, n = weights.n
    let segments = k / run, tiles = (rows + mr - 1) / mr
    let zeros = Storage(zeros: run)
    parallelClaims(tiles, grain: claimGrain(tiles, minGrain: 4)) { claims in
        let pointers = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: segments * mr)
        defer { pointers.deallocate() }
        let border = Storage(uninitialized: assembled ? segments * mr * run : 1)
        for claimed in claims { for tile in claimed {
            let r0 = tile * mr, tileRows = min(mr, rows - r0)
            point(r0..<(r0 + tileRows), pointers, UnsafePointer(zeros.pointer), border.pointer)
            for p0 in stride(from: 0, to: k, by: weights.sliceDepth) {
                let depth = min(weights.sliceDepth, k - p0), slice = UnsafePointer(weights.slice(p0))
                for jp in 0..<weights.panels {
                    let j0 = jp * nr
                    PackedGEMM.indirectTile(depth / run, run, pointers + p0 / run * mr, zeros: UnsafePointer(zeros.pointer), slice + jp * nr * depth,
                                            out + r0 * n + j0, n, rows: tileRows, columns: min(nr, n - j0), add: p0 > 0)
                }
            }
        } }
    }
}

/// The temporal convs' input gradient as an implicit GEMM (`Engine.implicitConv`): gx row
/// (n, t, hw) = sum over taps i of gy[n, t + pT - i, hw] W_i, i.e. the kT runs of O values of
/// gy it reads (zeros past the clip's ends) against the taps' weights stacked (kT*O x C), in
/// one pass. Per tap and sample on OpenBLAS, each product was only O deep and added into gx
/// (`maclr bench conv`: 36->16 at 28x28 1.6 vs 2.4 ms, 144->64 at 32x32 13.9 vs 17.1). The
/// same for the forward measured slower than `fusedTemporalForward`'s 12-row tiles on 16
/// output channels (1.3 vs 1.1 ms), so the forward stays per tap.
func implicitTemporalInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let kt = g.kernel[0], o = g.o, c = g.c, hw = g.h * g.w
    // W (O, kT, C) restacked tap by tap: row i*O + o is W[o, i, :].
    let stacked = Storage(uninitialized: kt * o * c)
    for i in 0..<kt { for j in 0..<o { (stacked.pointer + (i * o + j) * c).update(from: wt + (j * kt + i) * c, count: c) } }
    let weights = PackedGEMM.PackedB(false, stacked.pointer, c, k: kt * o, n: c, sliceDepth: PackedGEMM.kc / o * o)
    let offsets = (0..<kt).map { g.padding[0] - $0 }
    implicitGEMM(rows: g.n * g.t * hw, run: o, weights, gx, assembled: false) { rows, pointers, zeros, _ in
        pointFrameRuns(gy, sourceFrames: g.outT, rowFrames: g.t, hw: hw, run: o, offsets: offsets, rows: rows, pointers, zeros: zeros)
    }
}

/// For temporal convs: points `pointers[tap * indirectRows + i]` at the run of `run` values of
/// `source` ((N, sourceFrames, hw, run) data) that row `rows.lowerBound + i` of an
/// (N, rowFrames, hw) grid reads for tap `tap`: frame t + offsets[tap] at the same position, or
/// `zeros` past the clip's ends.
func pointFrameRuns(_ source: UnsafePointer<Float>, sourceFrames: Int, rowFrames: Int, hw: Int, run: Int, offsets: [Int],
                    rows: Range<Int>, _ pointers: UnsafeMutablePointer<UnsafePointer<Float>>, zeros: UnsafePointer<Float>) {
    let mr = PackedGEMM.indirectRows
    var r = rows.lowerBound, i = 0
    while i < rows.count {
        // a stretch of rows within one frame
        let frame = r / hw, pos = r % hw, stretch = min(rows.count - i, hw - pos)
        let sample = frame / rowFrames, t = frame % rowFrames
        for (tap, offset) in offsets.enumerated() {
            let from = t + offset, slot = tap * mr + i
            if from < 0 || from >= sourceFrames {
                for q in 0..<stretch { pointers[slot + q] = zeros }
            } else {
                let first = source + ((sample * sourceFrames + from) * hw + pos) * run
                for q in 0..<stretch { pointers[slot + q] = first + q * run }
            }
        }
        i += stretch; r += stretch
    }
    for i in rows.count..<mr { for tap in offsets.indices { pointers[tap * mr + i] = zeros } }
}

/// Points `pointers[tap * tableStride + i]` at the input run (kW*C values) that im2col row
/// `rows.lowerBound + i` reads for kernel tap `tap` = (kt, kh): in x, at `zeros` where the run
/// lies in the padding (and for rows past the end of a partial tile), or in `border` where the
/// left or right padding cuts it and it is assembled there. Works a stretch of rows within one
/// output row at a time, tap by tap: on the stems the table had cost more than the
/// multiply-adds (147 per row and output channel).
func pointRuns(_ x: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>, _ pointers: UnsafeMutablePointer<UnsafePointer<Float>>,
               zeros: UnsafePointer<Float>, border: UnsafeMutablePointer<Float>, tableStride mr: Int = PackedGEMM.indirectRows) {
    let c = g.c, run = g.kernel[2] * g.c, taps = g.kernel[0] * g.kernel[1]
    let (kt, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
    let (st, sh, sw) = (g.stride[0], g.stride[1], g.stride[2])
    let (pt, ph, pw) = (g.padding[0], g.padding[1], g.padding[2])
    let (t, h, w, outT, outH, outW) = (g.t, g.h, g.w, g.outT, g.outH, g.outW)
    // Output columns whose runs lie clear of the left and right padding: ow in inner.
    let innerStart = (pw + sw - 1) / sw, innerEnd = max(innerStart, (w - kw + pw) / sw + 1)
    var p = OutputPosition(row: rows.lowerBound, g)
    var i = 0
    while i < rows.count {
        let stretch = min(rows.count - i, outW - p.ow), ow0 = p.ow
        let inner = max(ow0, innerStart)..<max(max(ow0, innerStart), min(ow0 + stretch, innerEnd))
        for a in 0..<kt {
            let ti = p.ot &* st &- pt &+ a
            for b in 0..<kh {
                let hi = p.oh &* sh &- ph &+ b, slot = (a &* kh &+ b) &* mr &+ i
                if ti < 0 || ti >= t || hi < 0 || hi >= h {
                    for r in 0..<stretch { pointers[slot &+ r] = zeros }
                    continue
                }
                let rowStart = x + ((p.n &* t &+ ti) &* h &+ hi) &* w &* c
                for ow in inner { pointers[slot &+ ow &- ow0] = rowStart + (ow &* sw &- pw) &* c }
                for ow in ow0..<(ow0 + stretch) where !inner.contains(ow) {
                    // cut by the padding: assembled piece by piece
                    let assembled = border + (slot &+ ow &- ow0) &* run, w0 = ow &* sw &- pw
                    for l in 0..<kw {
                        let wi = w0 &+ l, piece = assembled + l &* c
                        if wi < 0 || wi >= w { piece.update(repeating: 0, count: c) } else { copyFloats(rowStart + wi &* c, piece, c) }
                    }
                    pointers[slot &+ ow &- ow0] = UnsafePointer(assembled)
                }
            }
        }
        i += stretch
        for _ in 0..<stretch { p.advance(outT: outT, outH: outH, outW: outW) }
    }
    for i in rows.count..<mr { for tap in 0..<taps { pointers[tap &* mr &+ i] = zeros } }
}

/// gW (O x K) = gy^T im2col(x) without the im2col matrix: each thread expands blocks of
/// `PackedGEMM.kc` rows into a buffer and accumulates gW^T (K x O) = im2col^T gy over its
/// blocks, so the expanded block is the product's A, read in place, and only gy's block
/// (rows x O, small) is packed. (As gy^T im2col, the block itself had to be packed, each packed
/// value serving only O multiply-adds: R3D-18's 64-channel weight gradient ran at 267 GFLOP/s.)
/// Threads claim grains of blocks; the grains' partials are summed and transposed at the end.
func fusedIm2colWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let k = g.columns, o = g.o, rows = g.n * g.rowsPerSample, block = PackedGEMM.kc
    let blocks = (rows + block - 1) / block
    let (grain, grains) = weightGradGrains(blocks, partialFloats: k * o)
    let partials = (0..<grains).map { _ in Storage(uninitialized: k * o) }
    parallelClaims(blocks, grain: grain) { claims in
        let buffer = Storage(uninitialized: block * k)
        for claimed in claims {
            let out = partials[claimed.lowerBound / grain].pointer
            for b in claimed {
                let r0 = b * block, r1 = min(rows, r0 + block)
                im2colRows(x, g, rows: r0..<r1, buffer.pointer)
                let gyBlock = PackedGEMM.PackedB(false, gy + r0 * o, o, k: r1 - r0, n: o)
                // Per temporal tap, only the block's rows that read it inside the clip (from the
                // first to the last such row: their columns elsewhere are zeros).
                var live = [Range<Int>](repeating: 0..<0, count: g.kernel[0])
                forEachLiveTapStretch(g, rows: r0..<r1) { rows, taps in
                    for i in taps {
                        let local = (rows.lowerBound - r0)..<(rows.upperBound - r0)
                        live[i] = live[i].isEmpty ? local : min(live[i].lowerBound, local.lowerBound)..<max(live[i].upperBound, local.upperBound)
                    }
                }
                let first = b == claimed.lowerBound
                for (i, depth) in live.enumerated() {
                    let columns = g.columns(temporalTaps: i..<(i + 1))
                    if depth.isEmpty && !first { continue }
                    PackedGEMM.multiply(true, columns.count, 1, buffer.pointer + columns.lowerBound, k, gyBlock, depth: depth,
                                        accumulate: !first, out + columns.lowerBound * o, o)
                }
            }
        }
    }
    sumTransposed(partials, k: k, o: o, into: gw)
}

/// Grains of `units` for a weight gradient's partial sums (`parallelClaims`, one partial of
/// `partialFloats` per grain, summed in grain order): up to 8 per thread, so a slow thread is
/// caught up, but no more than 32 MiB of partials unless that is less than one per thread (the
/// deep layers' gW is 5 MiB, and they have few blocks anyway). Returns the grain and the number
/// of grains.
func weightGradGrains(_ units: Int, partialFloats: Int) -> (grain: Int, grains: Int) {
    let byMemory = (32 << 20) / max(1, partialFloats * MemoryLayout<Float>.stride)
    let wanted = max(1, min(units, 8 * Engine.threads, max(Engine.threads, byMemory)))
    let grain = (units + wanted - 1) / wanted
    return (grain, (units + grain - 1) / grain)
}

/// gW (O x K) = the sum of the partial gW^T (K x O), in order: summed into the first partial
/// where they lie (contiguous, vectorised), then transposed once. (Summing while transposing
/// read every partial with a stride of O floats: a cost per grain that the quickstart's many
/// small weight gradients felt.)
func sumTransposed(_ partials: [Storage], k: Int, o: Int, into gw: UnsafeMutablePointer<Float>) {
    let total = partials[0].pointer
    if partials.count > 1 {
        parallelFor(k * o, minPerThread: 16_384) { s, e in
            for partial in partials.dropFirst() {
                let p = partial.pointer
                for i in s..<e { total[i] += p[i] }
            }
        }
    }
    parallelFor(o, minPerThread: max(1, 16_384 / k)) { o0, o1 in
        for i in o0..<o1 {
            let row = gw + i * k
            for j in 0..<k { row[j] = total[j * o + i] }
        }
    }
}

/// Whether the weight gradient runs as an implicit GEMM (`implicitWeightGrad`): kernel rows of
/// 12-256 values and output channels in whole half panels or fewer than 16 (a narrow tail after
/// whole panels is better served by the blocked path's `columnTail`). `maclr bench conv`:
/// R(2+1)D's 64->144 at 32x32 64 vs 74 ms; the quickstart's stems 3->11 7x7 1.8 vs 2.6 ms and
/// 2->8 1.4 vs 1.9 ms.
func usesImplicitWeightGrad(_ g: ConvGeometry) -> Bool {
    Engine.implicitConv && usesFusedIm2col(g) && g.kernel[2] * g.c <= PackedGEMM.kc
        && g.kernel[2] * g.c >= PackedGEMM.mr && (g.o % (PackedGEMM.nr / 2) == 0 || g.o < PackedGEMM.nr / 2)
}

/// gW^T (K x O) = im2col^T gy with no im2col block written: per block of `PackedGEMM.kc`
/// output positions, a table points at each position's input runs (`pointRuns`), and each
/// 12-row tile of gW^T (12 values of one tap's run) gathers its depth step from the position's
/// run (`PackedGEMM.gatherTile`) against gy's block, packed. Partials per grain, summed and
/// transposed at the end as in `fusedIm2colWeightGrad`.
func implicitWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let k = g.columns, o = g.o, rows = g.n * g.rowsPerSample, block = PackedGEMM.kc
    let run = g.kernel[2] * g.c, taps = g.kernel[0] * g.kernel[1], mr = PackedGEMM.mr
    let blocks = (rows + block - 1) / block
    let zeros = Storage(zeros: run)
    let (grain, grains) = weightGradGrains(blocks, partialFloats: k * o)
    let partials = (0..<grains).map { _ in Storage(zeros: k * o) }
    parallelClaims(blocks, grain: grain) { claims in
        let pointers = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: taps * block)
        defer { pointers.deallocate() }
        let border = Storage(uninitialized: taps * block * run)
        for claimed in claims {
            let out = partials[claimed.lowerBound / grain].pointer
            for b in claimed {
                let r0 = b * block, r1 = min(rows, r0 + block)
                pointRuns(x, g, rows: r0..<r1, pointers, zeros: UnsafePointer(zeros.pointer), border: border.pointer, tableStride: block)
                let gyBlock = PackedGEMM.PackedB(false, gy + r0 * o, o, k: r1 - r0, n: o)
                for tap in 0..<taps {
                    // Only from the first to the last position whose run for this tap lies
                    // inside the input: the others read zeros (a kernel row in the padding).
                    let table = pointers + tap * block, zero = UnsafePointer(zeros.pointer)
                    guard let first = (0..<(r1 - r0)).first(where: { table[$0] != zero }) else { continue }
                    let last = (0..<(r1 - r0)).last(where: { table[$0] != zero })!
                    // 12-value tiles of the run; the last one overlaps the one before and keeps only its new rows
                    for q0 in stride(from: 0, to: run, by: mr) {
                        let start = min(q0, run - mr)
                        PackedGEMM.gatherTile(first..<(last + 1), table, offset: start, gyBlock,
                                              out + (tap * run + start) * o, o, skipRows: q0 - start)
                    }
                }
            }
        }
    }
    sumTransposed(partials, k: k, o: o, into: gw)
}

/// gx += col2im(cols) for `samples` (the adjoint of im2col). Parallel over samples, which never
/// write the same input element.
func col2imAdd(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, samples: Range<Int>, _ gx: UnsafeMutablePointer<Float>) {
    let rps = g.rowsPerSample, first = samples.lowerBound * rps
    parallelFor(samples.count, minPerThread: 1) { s, e in
        col2imAddRows(cols + s * rps * g.columns, g, rows: (first + s * rps)..<(first + e * rps), gx)
    }
}

/// gx += col2im of the im2col rows `rows` (output positions counted over all samples) held in
/// `cols`, one thread.
func col2imAddRows(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>, _ gx: UnsafeMutablePointer<Float>) {
    var src = cols
    forEachIm2colRun(g, rows: rows) { input, count in
        if let input {
            let d = gx + input
            for q in 0..<count { d[q] += src[q] }
        }
        src += count
    }
}

/// gx = col2im(gy W) without the im2col-shaped matrix: threads claim units that never write the
/// same input element (whole samples; a few frames of one when each output frame reads only its
/// own input frame, as in 1xkxk convs); each multiplies blocks of `PackedGEMM.mc` rows by W,
/// packed once for all, into an L2-sized buffer and adds it back into gx at once.
func fusedCol2imInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let k = g.columns, block = PackedGEMM.mc
    let weights = PackedGEMM.PackedB(false, wt, k, k: g.o, n: k)
    // Units: whole samples, or (when frames are independent) a few frames of one sample.
    let byFrame = g.kernel[0] == 1 && g.stride[0] == 1 && g.padding[0] == 0
    let frameRows = g.outH * g.outW, frameInput = g.h * g.w * g.c
    let (framesPerUnit, unitsPerSample) = byFrame ? frameUnits(frames: g.t, rowsPerFrame: frameRows) : (g.t, 1)
    let units = g.n * unitsPerSample
    parallelClaims(units, grain: claimGrain(units)) { claims in
        let buffer = Storage(uninitialized: block * k)
        for claimed in claims { for unit in claimed {
            let n = unit / unitsPerSample, f0 = unit % unitsPerSample * framesPerUnit, frames = min(g.t, f0 + framesPerUnit) - f0
            // The unit's input: its own frames (byFrame: output frame f reads input frame f), or
            // the whole sample (f0 = 0, frames = t).
            (gx + (n * g.t + f0) * frameInput).update(repeating: 0, count: frames * frameInput)
            let first = n * g.rowsPerSample + f0 * frameRows, end = byFrame ? first + frames * frameRows : (n + 1) * g.rowsPerSample
            for r0 in stride(from: first, to: end, by: block) {
                let r1 = min(end, r0 + block)
                // Only the columns of taps inside the clip: col2im skips the padding's.
                forEachLiveTapStretch(g, rows: r0..<r1) { rows, taps in
                    PackedGEMM.multiply(false, rows.count, 1, gy + rows.lowerBound * g.o, g.o, weights,
                                        columns: g.columns(temporalTaps: taps), accumulate: false,
                                        buffer.pointer + (rows.lowerBound - r0) * k, k)
                }
                col2imAddRows(buffer.pointer, g, rows: r0..<r1, gx)
            }
        } }
    }
}

// Temporal-only convs without im2col. Per sample n and tap i, the output frames `ot` in
// validFrames(i) read input frames ot - pT + i: both are runs of whole frames, so
// y[n, ot] (frames*HW x O) += x[n, ot - pT + i] (frames*HW x C) W_i^T, where W_i = W[:, i, :]
// is (O x C) with row stride kT*C.

/// Calls `body(tap, frames, input, output)` for every sample and temporal tap with valid frames:
/// `frames` output frames starting at element offset `output` of (N, outT, H, W, O) data read
/// the same number of input frames starting at element offset `input` of (N, T, H, W, C) data.
/// A tap that reads every frame of every sample at no shift (the centre tap of a "same" conv)
/// is one call over all samples: the samples' blocks are contiguous in both, and one GEMM
/// packs the tap's weights once instead of once per sample.
func forEachTemporalTap(_ g: ConvGeometry, _ body: (_ tap: Int, _ frames: Int, _ input: Int, _ output: Int) -> Void) {
    let hw = g.h * g.w
    for i in 0..<g.kernel[0] {
        let frames = g.validFrames(tap: i)
        guard !frames.isEmpty else { continue }
        if frames == 0..<g.t && g.outT == g.t && i == g.padding[0] {
            body(i, g.n * g.t, 0, 0)
            continue
        }
        for n in 0..<g.n {
            body(i, frames.count,
                 (n * g.t + frames.lowerBound - g.padding[0] + i) * hw * g.c,
                 (n * g.outT + frames.lowerBound) * hw * g.o)
        }
    }
}

/// y = sum over taps of x_shifted W_i^T.
func temporalForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0]
    y.update(repeating: 0, count: g.n * g.outT * hw * g.o)
    forEachTemporalTap(g) { i, frames, input, output in
        convGEMM(false, true, frames * hw, g.o, g.c, 1, x + input, g.c, wt + i * g.c, kt * g.c, 1, y + output, g.o)
    }
}

/// gx[n, ot - pT + i] += gy[n, ot] W_i.
func temporalInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0]
    gx.update(repeating: 0, count: g.n * g.t * hw * g.c)
    forEachTemporalTap(g) { i, frames, input, output in
        convGEMM(false, false, frames * hw, g.c, g.o, 1, gy + output, g.o, wt + i * g.c, kt * g.c, 1, gx + input, g.c)
    }
}

/// gW_i (O x C, row stride kT*C) = sum over n of gy[n, frames]^T x[n, frames shifted by the tap].
func temporalWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0]
    gw.update(repeating: 0, count: g.o * kt * g.c)
    forEachTemporalTap(g) { i, frames, input, output in
        convGEMM(true, false, g.o, g.c, frames * hw, 1, gy + output, g.o, x + input, g.c, 1, gw + i * g.c, kt * g.c)
    }
}

/// Units of work of a few frames of one sample (of `frames`), at least 2048 rows when a clip
/// has them: with single frames of 784 rows, each unit's products ended in a partial tile and
/// took a packing buffer (the quickstart's 36->16 temporal forward took 1.2 instead of 1.0 ms).
/// Returns frames per unit and units per sample.
func frameUnits(frames: Int, rowsPerFrame: Int) -> (framesPerUnit: Int, unitsPerSample: Int) {
    let framesPerUnit = min(frames, max(1, (2048 + rowsPerFrame - 1) / rowsPerFrame))
    return (framesPerUnit, (frames + framesPerUnit - 1) / framesPerUnit)
}

/// The units threads claim in the fused temporal convs: a few output frames of one sample.
func temporalUnits(_ g: ConvGeometry) -> (framesPerUnit: Int, unitsPerSample: Int) {
    frameUnits(frames: g.outT, rowsPerFrame: g.h * g.w)
}

/// The temporal forward on our packed GEMM (`Engine.fusedConv`): y[n, frames] += x[n, frames +
/// shift] W_i^T with each tap's weights packed once and threads claiming a few frames at a time
/// (`temporalUnits`), where `sgemm` would split every per-sample product across threads and pack
/// the tap's weights for each. Per output element the taps still add in order. (The same for
/// the input gradient measured slower on R(2+1)D-18's 144->64 layer: its 144 columns leave a
/// half-width panel.)
func fusedTemporalForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0]
    // W_i is (O x C) at wt + i*C with row stride kT*C; the product needs W_i^T.
    let taps = (0..<kt).map { i in PackedGEMM.PackedB(true, wt + i * g.c, kt * g.c, k: g.c, n: g.o) }
    let (framesPerUnit, unitsPerSample) = temporalUnits(g)
    let units = g.n * unitsPerSample
    parallelClaims(units, grain: claimGrain(units)) { claims in
        for claimed in claims {
            for unit in claimed {
                let n = unit / unitsPerSample, f0 = unit % unitsPerSample * framesPerUnit
                let unitFrames = f0..<min(g.outT, f0 + framesPerUnit)
                (y + (n * g.outT + f0) * hw * g.o).update(repeating: 0, count: unitFrames.count * hw * g.o)
                for i in 0..<kt {
                    let frames = g.validFrames(tap: i).clamped(to: unitFrames)
                    guard !frames.isEmpty else { continue }
                    let inFrame = n * g.t + frames.lowerBound - g.padding[0] + i, outFrame = n * g.outT + frames.lowerBound
                    PackedGEMM.multiply(false, frames.count * hw, 1, x + inFrame * hw * g.c, g.c, taps[i],
                                        accumulate: true, y + outFrame * hw * g.o, g.o)
                }
            }
        }
    }
}

/// The temporal weight gradient on our packed GEMM (`Engine.fusedConv`): threads claim a few
/// frames of a sample at a time (`temporalUnits`) and accumulate gW_i^T (C x O) += x[n, frames +
/// shift]^T gy[n, frames] per tap, the input frames read in place and only gy's frames packed
/// (the smaller operand when O <= C, as in R(2+1)D's mid-channel convs); the grains' partials
/// are summed and transposed into gW (O, kT, C).
func fusedTemporalWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0], c = g.c, o = g.o
    let (framesPerUnit, unitsPerSample) = temporalUnits(g)
    let units = g.n * unitsPerSample
    let (grain, grains) = weightGradGrains(units, partialFloats: kt * c * o)
    let partials = (0..<grains).map { _ in Storage(zeros: kt * c * o) }
    parallelClaims(units, grain: grain) { claims in
        for claimed in claims {
            let out = partials[claimed.lowerBound / grain].pointer
            for unit in claimed {
                let n = unit / unitsPerSample, f0 = unit % unitsPerSample * framesPerUnit
                for i in 0..<kt {
                    let frames = g.validFrames(tap: i).clamped(to: f0..<min(g.outT, f0 + framesPerUnit))
                    guard !frames.isEmpty else { continue }
                    let inFrame = n * g.t + frames.lowerBound - g.padding[0] + i, outFrame = n * g.outT + frames.lowerBound
                    let gyFrames = PackedGEMM.PackedB(false, gy + outFrame * hw * o, o, k: frames.count * hw, n: o)
                    PackedGEMM.multiply(true, c, 1, x + inFrame * hw * c, c, gyFrames, accumulate: true, out + i * c * o, o)
                }
            }
        }
    }
    // The partials are gW^T with rows (tap, channel), gW's columns in (O, kT, C).
    sumTransposed(partials, k: kt * c, o: o, into: gw)
}

/// y (rows x O) = cols (rows x K) W^T.
func convForwardKernel(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let k = g.columns
    if g.isPointwise {
        convGEMM(false, true, g.n * g.rowsPerSample, g.o, k, 1, x, k, wt, k, 0, y, g.o)
        return
    }
    if g.isTemporalOnly {
        if Engine.fusedConv {
            // Timed as the im2col GEMM of the same FLOPs (all taps), for the bare comparison.
            convGEMMTimed(GEMMShape(transA: false, transB: true, m: g.n * g.rowsPerSample, n: g.o, k: k, lda: k, ldb: k, ldc: g.o)) {
                fusedTemporalForward(x, wt, g, y)
            }
        } else {
            temporalForward(x, wt, g, y)
        }
        return
    }
    if usesFusedIm2col(g) {
        convGEMMTimed(GEMMShape(transA: false, transB: true, m: g.n * g.rowsPerSample, n: g.o, k: k, lda: k, ldb: k, ldc: g.o)) {
            if usesImplicitForward(g) { implicitConvForward(x, wt, g, y) } else { fusedIm2colForward(x, wt, g, y) }
        }
        return
    }
    let per = samplesPerChunk(g)
    let buffer = Storage(uninitialized: per * g.rowsPerSample * k)
    for n0 in stride(from: 0, to: g.n, by: per) {
        let samples = n0..<min(g.n, n0 + per)
        im2col(x, g, samples: samples, buffer.pointer)
        let first = n0 * g.rowsPerSample, rows = samples.count * g.rowsPerSample
        let live = uniformLiveColumns(g, rows: first..<(first + rows))
        convGEMMTimed(GEMMShape(transA: false, transB: true, m: rows, n: g.o, k: k, lda: k, ldb: k, ldc: g.o)) {
            sgemm(false, true, rows, g.o, live.count, 1, buffer.pointer + live.lowerBound, k, wt + live.lowerBound, k, 0, y + first * g.o, g.o)
        }
    }
}

/// gx = col2im(gy W): the gradient of the input.
func convInputGradKernel(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let k = g.columns
    if g.isPointwise {
        convGEMM(false, false, g.n * g.rowsPerSample, k, g.o, 1, gy, g.o, wt, k, 0, gx, k)
        return
    }
    if g.isTemporalOnly {
        if Engine.fusedConv && Engine.implicitConv && g.o <= PackedGEMM.kc {
            convGEMMTimed(GEMMShape(transA: false, transB: false, m: g.n * g.rowsPerSample, n: k, k: g.o, lda: g.o, ldb: k, ldc: k)) {
                implicitTemporalInputGrad(gy, wt, g, gx)
            }
        } else {
            temporalInputGrad(gy, wt, g, gx)
        }
        return
    }
    if usesFusedIm2col(g) {
        convGEMMTimed(GEMMShape(transA: false, transB: false, m: g.n * g.rowsPerSample, n: k, k: g.o, lda: g.o, ldb: k, ldc: k)) {
            fusedCol2imInputGrad(gy, wt, g, gx)
        }
        return
    }
    gx.update(repeating: 0, count: g.n * g.t * g.h * g.w * g.c)
    let per = samplesPerChunk(g)
    let buffer = Storage(uninitialized: per * g.rowsPerSample * k)
    for n0 in stride(from: 0, to: g.n, by: per) {
        let samples = n0..<min(g.n, n0 + per)
        let first = n0 * g.rowsPerSample, rows = samples.count * g.rowsPerSample
        // col2im skips the columns of taps in the padding
        let live = uniformLiveColumns(g, rows: first..<(first + rows))
        convGEMMTimed(GEMMShape(transA: false, transB: false, m: rows, n: k, k: g.o, lda: g.o, ldb: k, ldc: k)) {
            sgemm(false, false, rows, live.count, g.o, 1, gy + first * g.o, g.o, wt + live.lowerBound, k, 0, buffer.pointer + live.lowerBound, k)
        }
        col2imAdd(buffer.pointer, g, samples: samples, gx)
    }
}

/// gW (O x K) = gy^T cols: the gradient of the weight.
func convWeightGradKernel(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let k = g.columns
    if g.isPointwise {
        convGEMM(true, false, g.o, k, g.n * g.rowsPerSample, 1, gy, g.o, x, k, 0, gw, k)
        return
    }
    if g.isTemporalOnly {
        if Engine.fusedConv && g.o <= g.c {
            convGEMMTimed(GEMMShape(transA: true, transB: false, m: g.o, n: k, k: g.n * g.rowsPerSample, lda: g.o, ldb: k, ldc: k)) {
                fusedTemporalWeightGrad(x, gy, g, gw)
            }
        } else {
            temporalWeightGrad(x, gy, g, gw)
        }
        return
    }
    if usesFusedIm2col(g) {
        convGEMMTimed(GEMMShape(transA: true, transB: false, m: g.o, n: k, k: g.n * g.rowsPerSample, lda: g.o, ldb: k, ldc: k)) {
            if usesImplicitWeightGrad(g) { implicitWeightGrad(x, gy, g, gw) } else { fusedIm2colWeightGrad(x, gy, g, gw) }
        }
        return
    }
    let per = samplesPerChunk(g)
    let buffer = Storage(uninitialized: per * g.rowsPerSample * k)
    for n0 in stride(from: 0, to: g.n, by: per) {
        let samples = n0..<min(g.n, n0 + per)
        im2col(x, g, samples: samples, buffer.pointer)
        let first = n0 * g.rowsPerSample, rows = samples.count * g.rowsPerSample
        // the columns of gW outside `live` stay zero (the GEMM writes the others)
        let live = uniformLiveColumns(g, rows: first..<(first + rows))
        if n0 == 0 && live.count < k {
            for i in 0..<g.o {
                let row = gw + i * k
                row.update(repeating: 0, count: live.lowerBound)
                (row + live.upperBound).update(repeating: 0, count: k - live.upperBound)
            }
        }
        convGEMMTimed(GEMMShape(transA: true, transB: false, m: g.o, n: k, k: rows, lda: g.o, ldb: k, ldc: k)) {
            sgemm(true, false, g.o, live.count, rows, 1, gy + first * g.o, g.o, buffer.pointer + live.lowerBound, k, n0 == 0 ? 0 : 1,
                  gw + live.lowerBound, k)
        }
    }
}

// The three ops below are closed under differentiation: each one's backward is made of the
// other two, which is what makes conv nets twice differentiable (MCL's alignment loss).

/// 3-D convolution, channels-last. x (N, T, H, W, C), weight (O, kT, kH, kW, C) -> (N, oT, oH, oW, O).
public func conv3d(_ x: Tensor, _ weight: Tensor, stride: [Int] = [1, 1, 1], padding: [Int] = [0, 0, 0]) -> Tensor {
    let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding)
    return conv3d(x, weight, g)
}

func conv3d(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
    let y = Tensor(uninitialized: g.outputShape)
    ConvStats.time("fwd", g) { convForwardKernel(x.data, weight.data, g, y.data) }
    if ConvStats.enabled { let m = g.macs; ConvStats.nominalMACs += m.nominal; ConvStats.validMACs += m.valid }
    return record("conv3d", y, [x, weight]) { gy in
        [x.tracksGrad ? conv3dInputGrad(gy, weight, g) : nil,
         weight.tracksGrad ? conv3dWeightGrad(x, gy, g) : nil]
    }
}

/// The input gradient of conv3d as an op: linear in gy and in weight.
func conv3dInputGrad(_ gy: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
    let gx = Tensor(uninitialized: g.inputShape)
    ConvStats.time("dx ", g) { convInputGradKernel(gy.data, weight.data, g, gx.data) }
    return record("conv3d_input_grad", gx, [gy, weight]) { ggx in
        [gy.tracksGrad ? conv3d(ggx, weight, g) : nil,
         weight.tracksGrad ? conv3dWeightGrad(ggx, gy, g) : nil]
    }
}

/// The weight gradient of conv3d as an op: linear in x and in gy.
func conv3dWeightGrad(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry) -> Tensor {
    let gw = Tensor(uninitialized: g.weightShape)
    ConvStats.time("dw ", g) { convWeightGradKernel(x.data, gy.data, g, gw.data) }
    return record("conv3d_weight_grad", gw, [x, gy]) { ggw in
        [x.tracksGrad ? conv3dInputGrad(gy, ggw, g) : nil,
         gy.tracksGrad ? conv3d(x, ggw, g) : nil]
    }
}
