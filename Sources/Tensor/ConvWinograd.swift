import Foundation

// Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks") for
// convs with a 3x3 spatial kernel at stride 1, padded by one: R(2+1)D's (1, 3, 3) convs and
// R3D's (3, 3, 3) ones. A 2x2 output tile comes from the 4x4 input tile d around it as
//     Y = Aᵀ [ Σ_c (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// 16 products per channel pair instead of 36: at each of the 16 places ξ of a transformed tile
// one GEMM, (tiles x C) times (C x O), and with several temporal taps the taps' products added
// up, each tap reading its own input frame. The input gradient is the same conv of gy by the
// kernel turned by 180° with its channels swapped; the weight gradient sums (A gy Aᵀ) ⊙ (Bᵀ d B)
// over the tiles, one GEMM per tap and ξ, and maps the sum back with Gᵀ (.) G.
//     Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 -1 -1]
// Tiles are taken a block at a time, so the transformed block stays in L2 while OpenBLAS multiplies
// it, single-threaded inside our threads (it matched or beat our packed GEMM here, and serves the
// AVX2 builds that have no packed GEMM).

extension ConvGeometry {
    /// A (kT, 3, 3) kernel at stride 1, padded by one in space and by at most kT - 1 in time:
    /// what F(2x2, 3x3) computes, frame by frame for each temporal tap.
    public var isWinogradShape: Bool {
        kernel[1] == 3 && kernel[2] == 3 && stride == [1, 1, 1] && padding[1] == 1 && padding[2] == 1 && padding[0] < kernel[0]
    }
}

enum Winograd {
    /// Tiles per block: the block's 16 transformed inputs and 16 products stay in L2.
    static func blockTiles(inputs c: Int, outputs o: Int, most: Int = 96) -> Int {
        let perTile = 16 * (c + o) * MemoryLayout<Float>.stride
        return max(16, min(most, (768 << 10) / perTile / 16 * 16))
    }

    /// The tiles of a conv's output: 2x2 outputs over each h x w output frame, and the input
    /// frame each temporal tap reads (stride 1 over time).
    struct Tiling {
        let samples: Int, inputFrames: Int, outputFrames: Int, taps: Int, temporalPadding: Int, h: Int, w: Int
        var rows: Int { (h + 1) / 2 }
        var columns: Int { (w + 1) / 2 }
        var perFrame: Int { rows * columns }
        var count: Int { samples * outputFrames * perFrame }

        /// The input frame (samples' frames in a row) that tap i of output frame f reads; nil in the padding.
        @inline(__always)
        func inputFrame(outputFrame f: Int, tap i: Int) -> Int? {
            let n = f / outputFrames, frame = f % outputFrames - temporalPadding + i
            guard frame >= 0 && frame < inputFrames else { return nil }
            return n * inputFrames + frame
        }
    }

    // MARK: transforms, over a vector of channels at a time

    @inline(__always)
    static func inputTransform<V: SIMD>(_ d: UnsafeMutablePointer<V>) where V.Scalar == Float {
        // rows, then columns: Bᵀ d B
        for j in 0..<4 {
            let d0 = d[j], d1 = d[4 + j], d2 = d[8 + j], d3 = d[12 + j]
            d[j] = d0 - d2; d[4 + j] = d1 + d2; d[8 + j] = d2 - d1; d[12 + j] = d1 - d3
        }
        for i in 0..<4 {
            let d0 = d[4 * i], d1 = d[4 * i + 1], d2 = d[4 * i + 2], d3 = d[4 * i + 3]
            d[4 * i] = d0 - d2; d[4 * i + 1] = d1 + d2; d[4 * i + 2] = d2 - d1; d[4 * i + 3] = d1 - d3
        }
    }

    /// Aᵀ m A: 16 values -> the 2x2 tile (row-major) in m[0], m[1], m[4], m[5].
    @inline(__always)
    static func outputTransform<V: SIMD>(_ m: UnsafeMutablePointer<V>) where V.Scalar == Float {
        for j in 0..<4 {
            let m0 = m[j], m1 = m[4 + j], m2 = m[8 + j], m3 = m[12 + j]
            m[j] = m0 + m1 + m2; m[4 + j] = m1 - m2 - m3
        }
        for i in 0..<2 {
            let m0 = m[4 * i], m1 = m[4 * i + 1], m2 = m[4 * i + 2], m3 = m[4 * i + 3]
            m[4 * i] = m0 + m1 + m2; m[4 * i + 1] = m1 - m2 - m3
        }
    }

    /// A q Aᵀ of a 2x2 tile in q[0], q[1], q[4], q[5] -> 16 values.
    @inline(__always)
    static func gradientTransform<V: SIMD>(_ q: UnsafeMutablePointer<V>) where V.Scalar == Float {
        for i in [0, 1] {
            let a = q[4 * i], b = q[4 * i + 1]
            q[4 * i] = a; q[4 * i + 1] = a + b; q[4 * i + 2] = a - b; q[4 * i + 3] = -b
        }
        for j in 0..<4 {
            let a = q[j], b = q[4 + j]
            q[j] = a; q[4 + j] = a + b; q[8 + j] = a - b; q[12 + j] = -b
        }
    }

    /// G g Gᵀ of one 3x3 kernel (row-major, `g`) -> 16 values (`u`); `t` holds G g (4 x 3).
    @inline(__always)
    static func kernelTransform(_ g: UnsafePointer<Float>, _ u: UnsafeMutablePointer<Float>, scratch t: UnsafeMutablePointer<Float>) {
        for j in 0..<3 {
            let g0 = g[j], g1 = g[3 + j], g2 = g[6 + j]
            t[j] = g0; t[3 + j] = 0.5 * (g0 + g1 + g2); t[6 + j] = 0.5 * (g0 - g1 + g2); t[9 + j] = g2
        }
        for i in 0..<4 {
            let t0 = t[3 * i], t1 = t[3 * i + 1], t2 = t[3 * i + 2]
            u[4 * i] = t0; u[4 * i + 1] = 0.5 * (t0 + t1 + t2); u[4 * i + 2] = 0.5 * (t0 - t1 + t2); u[4 * i + 3] = t2
        }
    }

    /// Gᵀ z G of 16 values (`z`) -> one 3x3 kernel (row-major, `w`); `t` holds Gᵀ z (3 x 4).
    @inline(__always)
    static func kernelGradientTransform(_ z: UnsafePointer<Float>, _ w: UnsafeMutablePointer<Float>, scratch t: UnsafeMutablePointer<Float>) {
        for j in 0..<4 {
            let z0 = z[j], z1 = z[4 + j], z2 = z[8 + j], z3 = z[12 + j]
            t[j] = z0 + 0.5 * (z1 + z2); t[4 + j] = 0.5 * (z1 - z2); t[8 + j] = 0.5 * (z1 + z2) + z3
        }
        for i in 0..<3 {
            let t0 = t[4 * i], t1 = t[4 * i + 1], t2 = t[4 * i + 2], t3 = t[4 * i + 3]
            w[3 * i] = t0 + 0.5 * (t1 + t2); w[3 * i + 1] = 0.5 * (t1 - t2); w[3 * i + 2] = 0.5 * (t1 + t2) + t3
        }
    }

    /// U (kT, 16, inputs, outputs): the transformed kernels, tap- then ξ-major, for the GEMMs' B.
    /// Weights are ours, (O, kT, 3, 3, C); `turned` gives the input gradient's conv (C <- O, the
    /// kernel turned by 180° in time and space).
    static func transformedWeights(_ weight: UnsafePointer<Float>, o: Int, c: Int, taps: Int, turned: Bool) -> Storage {
        let (inputs, outputs) = turned ? (o, c) : (c, o)
        let u = Storage(uninitialized: taps * 16 * inputs * outputs)
        let out = u.pointer
        parallelFor(o, minPerThread: max(1, 4096 / max(1, c))) { o0, o1 in
            let g = UnsafeMutablePointer<Float>.allocate(capacity: 9), t = UnsafeMutablePointer<Float>.allocate(capacity: 16)
            let gt = UnsafeMutablePointer<Float>.allocate(capacity: 12)
            defer { g.deallocate(); t.deallocate(); gt.deallocate() }
            for oi in o0..<o1 { for ti in 0..<taps { for ci in 0..<c {
                for tap in 0..<9 { g[turned ? 8 - tap : tap] = weight[((oi * taps + ti) * 9 + tap) * c + ci] }
                kernelTransform(g, t, scratch: gt)
                let (i, j) = turned ? (oi, ci) : (ci, oi)
                let plane = (turned ? taps - 1 - ti : ti) * 16
                for xi in 0..<16 { out[((plane + xi) * inputs + i) * outputs + j] = t[xi] }
            } } }
        }
        return u
    }

    // MARK: the three products

    /// y (frames, H, W, outputs) = the conv of x (frames, H, W, inputs) by U (`transformedWeights`).
    static func convolve(_ x: UnsafePointer<Float>, _ u: Storage, _ tiling: Tiling, inputs c: Int, outputs o: Int, _ y: UnsafeMutablePointer<Float>) {
        // OpenBLAS's AVX2 kernels (no packed GEMM beside them) pay their packing over more tiles
        let block = blockTiles(inputs: c, outputs: o, most: Engine.options.blockedConvs ? 96 : 256)
        let blocks = (tiling.count + block - 1) / block
        parallelClaims(blocks, grain: claimGrain(blocks)) { claims in
            let v = Storage(uninitialized: 16 * block * c), m = Storage(uninitialized: 16 * block * o)
            let zeros = Storage(uninitialized: c)
            zeros.pointer.update(repeating: 0, count: c)
            let scratch = Scratch()
            for claimed in claims { for b in claimed {
                let t0 = b * block, tiles = min(tiling.count, t0 + block) - t0
                // each temporal tap's products added up (a tap in the padding transforms zeros)
                for tap in 0..<tiling.taps {
                    transformInputs(x, tiling, tap: tap, tiles: t0..<(t0 + tiles), channels: c, into: v.pointer, xiStride: block * c,
                                    zeros: zeros.pointer, scratch)
                    for xi in 0..<16 {
                        singleThreadSgemm(false, false, tiles, o, c, 1, v.pointer + xi * block * c, c, u.pointer + (tap * 16 + xi) * c * o, o,
                                          tap > 0 ? 1 : 0, m.pointer + xi * block * o, o)
                    }
                }
                for local in 0..<tiles {
                    let (f, r, col) = position(t0 + local, tiling)
                    for k in 0..<4 {
                        let pixel = outputPixel(tiling, f: f, r: r, col: col, corner: k)
                        if let pixel { scratch.outputs[k] = y + pixel * o } else { scratch.outputs[k] = nil }
                    }
                    untransformTile(m.pointer + local * o, xiStride: block * o, channels: o, into: scratch.outputs, scratch)
                }
            } }
        }
    }

    /// gW (O, kT, 3, 3, C) of the conv of x (N, T, H, W, C) giving gy (N, oT, H, W, O).
    static func weightGradient(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ tiling: Tiling, c: Int, o: Int,
                               _ gw: UnsafeMutablePointer<Float>) {
        // the tiles are the GEMMs' depth here: deeper blocks, fewer passes over the partial sums
        let block = blockTiles(inputs: c, outputs: o, most: 256)
        let blocks = (tiling.count + block - 1) / block
        let planes = tiling.taps * 16
        let (grain, grains) = weightGradGrains(blocks, partialFloats: planes * c * o)
        // per grain and tap: Z (16, O, C) when O >= C, else Zᵀ (16, C, O): Σ over its tiles of Qᵀ V, ξ by ξ
        let partials = (0..<grains).map { _ in Storage(uninitialized: planes * c * o) }
        parallelClaims(blocks, grain: grain) { claims in
            let v = Storage(uninitialized: 16 * block * c), q = Storage(uninitialized: 16 * block * o)
            let zeros = Storage(uninitialized: max(c, o))
            zeros.pointer.update(repeating: 0, count: max(c, o))
            let scratch = Scratch(), grads = Scratch()
            for claimed in claims {
                let z = partials[claimed.lowerBound / grain].pointer
                for b in claimed {
                    let t0 = b * block, tiles = min(tiling.count, t0 + block) - t0
                    for local in 0..<tiles {
                        let (f, r, col) = position(t0 + local, tiling)
                        for k in 0..<4 {
                            let pixel = outputPixel(tiling, f: f, r: r, col: col, corner: k)
                            if let pixel { grads.pointers[k] = gy + pixel * o } else { grads.pointers[k] = UnsafePointer(zeros.pointer) }
                        }
                        transformGradientTile(grads.pointers, channels: o, into: q.pointer + local * o, xiStride: block * o, scratch)
                    }
                    let first = b == claimed.lowerBound
                    for tap in 0..<tiling.taps {
                        transformInputs(x, tiling, tap: tap, tiles: t0..<(t0 + tiles), channels: c, into: v.pointer, xiStride: block * c,
                                        zeros: zeros.pointer, scratch)
                        // Z_ξ (O x C) += Q_ξᵀ V_ξ, or its transpose when C > O
                        for xi in 0..<16 {
                            let (zPlane, vPlane, qPlane) = (z + (tap * 16 + xi) * c * o, v.pointer + xi * block * c, q.pointer + xi * block * o)
                            if o >= c {
                                singleThreadSgemm(true, false, o, c, tiles, 1, qPlane, o, vPlane, c, first ? 0 : 1, zPlane, c)
                            } else {
                                singleThreadSgemm(true, false, c, o, tiles, 1, vPlane, c, qPlane, o, first ? 0 : 1, zPlane, o)
                            }
                        }
                    }
                }
            }
        }
        let total = partials[0].pointer
        if partials.count > 1 {
            parallelFor(planes * c * o, minPerThread: 16_384) { s, e in
                for partial in partials.dropFirst() {
                    let p = partial.pointer
                    for i in s..<e { total[i] += p[i] }
                }
            }
        }
        parallelFor(o, minPerThread: max(1, 4096 / max(1, c))) { o0, o1 in
            let zt = UnsafeMutablePointer<Float>.allocate(capacity: 16), k = UnsafeMutablePointer<Float>.allocate(capacity: 9)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 12)
            defer { zt.deallocate(); k.deallocate(); scratch.deallocate() }
            for oi in o0..<o1 { for ti in 0..<tiling.taps { for ci in 0..<c {
                for xi in 0..<16 {
                    let plane = ti * 16 + xi
                    zt[xi] = o >= c ? total[(plane * o + oi) * c + ci] : total[(plane * c + ci) * o + oi]
                }
                kernelGradientTransform(zt, k, scratch: scratch)
                for tap in 0..<9 { gw[((oi * tiling.taps + ti) * 9 + tap) * c + ci] = k[tap] }
            } } }
        }
    }

    /// One thread's scratch for the tile loops: no allocation per tile. The transforms take
    /// channels 16, 8, 4 at a time and then one by one (a channel count such as 36 or 57 would
    /// otherwise leave 4 or 9 channels to the one-by-one loop), each width with its own 16 vectors.
    final class Scratch {
        let pointers = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 16)
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 4)
        let v16 = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 16)
        let v8 = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: 16)
        let v4 = UnsafeMutablePointer<SIMD4<Float>>.allocate(capacity: 16)
        let v2 = UnsafeMutablePointer<SIMD2<Float>>.allocate(capacity: 16)
        deinit { pointers.deallocate(); outputs.deallocate(); v16.deallocate(); v8.deallocate(); v4.deallocate(); v2.deallocate() }

        /// Calls `step(ch, vectors)` over the channels in the widest steps that fit: 16, 8, 4,
        /// then single channels in the first lane of a SIMD2.
        @inline(__always)
        func forEachChannelStep(_ channels: Int, _ step16: (Int, UnsafeMutablePointer<SIMD16<Float>>) -> Void,
                                _ step8: (Int, UnsafeMutablePointer<SIMD8<Float>>) -> Void,
                                _ step4: (Int, UnsafeMutablePointer<SIMD4<Float>>) -> Void,
                                _ step1: (Int, UnsafeMutablePointer<SIMD2<Float>>) -> Void) {
            var ch = 0
            while ch + 16 <= channels { step16(ch, v16); ch += 16 }
            if ch + 8 <= channels { step8(ch, v8); ch += 8 }
            if ch + 4 <= channels { step4(ch, v4); ch += 4 }
            while ch < channels { step1(ch, v2); ch += 1 }
        }
    }

    /// Frame, tile row and tile column of tile `t`.
    @inline(__always)
    static func position(_ t: Int, _ tiling: Tiling) -> (Int, Int, Int) {
        let f = t / tiling.perFrame, within = t % tiling.perFrame
        return (f, within / tiling.columns, within % tiling.columns)
    }

    /// Bᵀ d B of one tile, channels at a time: `rows` the 16 input pixels (channels contiguous),
    /// out[ξ * xiStride + channel].
    static func transformTile(_ rows: UnsafePointer<UnsafePointer<Float>>, channels: Int, into out: UnsafeMutablePointer<Float>,
                              xiStride: Int, _ scratch: Scratch) {
        @inline(__always) func step<V: SIMD>(_ ch: Int, _ d: UnsafeMutablePointer<V>) where V.Scalar == Float {
            for p in 0..<16 { d[p] = UnsafeRawPointer(rows[p] + ch).loadUnaligned(as: V.self) }
            inputTransform(d)
            for p in 0..<16 { UnsafeMutableRawPointer(out + p * xiStride + ch).storeBytes(of: d[p], as: V.self) }
        }
        scratch.forEachChannelStep(channels, step, step, step) { ch, s in
            for p in 0..<16 { s[p] = SIMD2(rows[p][ch], 0) }
            inputTransform(s)
            for p in 0..<16 { out[p * xiStride + ch] = s[p][0] }
        }
    }

    /// The 2x2 tile's places among the 16.
    static let corners = [0, 1, 4, 5]

    /// A q Aᵀ of one gradient tile: `rows` the 2x2 gy pixels, out[ξ * xiStride + channel].
    static func transformGradientTile(_ rows: UnsafePointer<UnsafePointer<Float>>, channels: Int, into out: UnsafeMutablePointer<Float>,
                                      xiStride: Int, _ scratch: Scratch) {
        @inline(__always) func step<V: SIMD>(_ ch: Int, _ q: UnsafeMutablePointer<V>) where V.Scalar == Float {
            for k in 0..<4 { q[corners[k]] = UnsafeRawPointer(rows[k] + ch).loadUnaligned(as: V.self) }
            gradientTransform(q)
            for p in 0..<16 { UnsafeMutableRawPointer(out + p * xiStride + ch).storeBytes(of: q[p], as: V.self) }
        }
        scratch.forEachChannelStep(channels, step, step, step) { ch, s in
            for k in 0..<4 { s[corners[k]] = SIMD2(rows[k][ch], 0) }
            gradientTransform(s)
            for p in 0..<16 { out[p * xiStride + ch] = s[p][0] }
        }
    }

    /// Aᵀ m A of one tile's 16 products (m[ξ * xiStride + channel]) into its 2x2 outputs (nil: outside the frame).
    static func untransformTile(_ m: UnsafePointer<Float>, xiStride: Int, channels: Int,
                                into outs: UnsafePointer<UnsafeMutablePointer<Float>?>, _ scratch: Scratch) {
        @inline(__always) func step<V: SIMD>(_ ch: Int, _ v: UnsafeMutablePointer<V>) where V.Scalar == Float {
            for p in 0..<16 { v[p] = UnsafeRawPointer(m + p * xiStride + ch).loadUnaligned(as: V.self) }
            outputTransform(v)
            for k in 0..<4 {
                if let out = outs[k] { UnsafeMutableRawPointer(out + ch).storeBytes(of: v[corners[k]], as: V.self) }
            }
        }
        scratch.forEachChannelStep(channels, step, step, step) { ch, s in
            for p in 0..<16 { s[p] = SIMD2(m[p * xiStride + ch], 0) }
            outputTransform(s)
            for k in 0..<4 { outs[k]?[ch] = s[corners[k]][0] }
        }
    }

    /// The pixel index (frame-major) of output corner k (0...3, row-major) of tile (f, r, col); nil outside the frame.
    @inline(__always)
    static func outputPixel(_ tiling: Tiling, f: Int, r: Int, col: Int, corner k: Int) -> Int? {
        let yy = 2 * r + k / 2, xx = 2 * col + k % 2
        guard yy < tiling.h && xx < tiling.w else { return nil }
        let pixel: Int = (f * tiling.h + yy) * tiling.w + xx
        return pixel
    }

    /// Bᵀ d B of every tile in `tiles` as temporal tap `tap` reads it: out[ξ * xiStride + local tile * channels + channel].
    static func transformInputs(_ x: UnsafePointer<Float>, _ tiling: Tiling, tap: Int, tiles: Range<Int>, channels c: Int,
                                into out: UnsafeMutablePointer<Float>, xiStride: Int, zeros: UnsafePointer<Float>, _ scratch: Scratch) {
        for t in tiles {
            let (f, r, col) = position(t, tiling)
            gatherInput(x, tiling, channels: c, frame: tiling.inputFrame(outputFrame: f, tap: tap), r: r, col: col,
                        zeros: zeros, into: scratch.pointers)
            transformTile(scratch.pointers, channels: c, into: out + (t - tiles.lowerBound) * c, xiStride: xiStride, scratch)
        }
    }

    /// The 16 input pixels of the tile at (r, col) of input frame `frame` into `rows`: pointers
    /// into x, or to `zeros` in the padding (all of them for a frame in the temporal padding).
    @inline(__always)
    static func gatherInput(_ x: UnsafePointer<Float>, _ tiling: Tiling, channels c: Int, frame: Int?, r: Int, col: Int,
                            zeros: UnsafePointer<Float>, into rows: UnsafeMutablePointer<UnsafePointer<Float>>) {
        let (h, w) = (tiling.h, tiling.w)
        guard let frame else {
            for p in 0..<16 { rows[p] = zeros }
            return
        }
        for i in 0..<4 {
            let yy = 2 * r - 1 + i
            let rowInside = yy >= 0 && yy < h
            for j in 0..<4 {
                let xx = 2 * col - 1 + j
                if rowInside && xx >= 0 && xx < w {
                    let pixel: Int = (frame * h + yy) * w + xx
                    rows[4 * i + j] = x + pixel * c
                } else {
                    rows[4 * i + j] = zeros
                }
            }
        }
    }
}

extension ConvGeometry {
    /// The tiles of this conv's output, each tap reading the input's frames.
    var winogradTiling: Winograd.Tiling {
        .init(samples: n, inputFrames: t, outputFrames: outT, taps: kernel[0], temporalPadding: padding[0], h: h, w: w)
    }
}

/// The forward product of a `isWinogradShape` conv: x (N, T, H, W, C), W (O, kT, 3, 3, C) -> y.
func winogradForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let u = Winograd.transformedWeights(w, o: g.o, c: g.c, taps: g.kernel[0], turned: false)
    Winograd.convolve(x, u, g.winogradTiling, inputs: g.c, outputs: g.o, y)
}

/// The input gradient: gy (N, oT, H, W, O) convolved by the kernel turned by 180° in time and
/// space, channels swapped, over time with the padding that gives back T frames.
func winogradInputGrad(_ gy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let u = Winograd.transformedWeights(w, o: g.o, c: g.c, taps: g.kernel[0], turned: true)
    let tiling = Winograd.Tiling(samples: g.n, inputFrames: g.outT, outputFrames: g.t, taps: g.kernel[0],
                                 temporalPadding: g.kernel[0] - 1 - g.padding[0], h: g.h, w: g.w)
    Winograd.convolve(gy, u, tiling, inputs: g.o, outputs: g.c, gx)
}

/// The weight gradient: x (N, T, H, W, C) and gy (N, oT, H, W, O) -> gW (O, kT, 3, 3, C).
func winogradWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    Winograd.weightGradient(x, gy, g.winogradTiling, c: g.c, o: g.o, gw)
}
