import Foundation

// Convs with few input and output channels (the stems: 2-3 channels in, 8-16 out) on vectors
// that run along an output row. Channels-last, such a conv's im2col runs hold kW*C values and its
// output rows 8-16 columns, so a tile 16 channels wide leaves up to half its lanes empty and its
// few rows of accumulators wait on each other. Here the 16 lanes are 16 output positions along W:
// the input is split once into planes, one per input row, channel and stride phase along W, in
// which the values one kernel tap reads for consecutive outputs lie side by side. A tile is up
// to 32 outputs of one output row by 8 or 12 output channels (up to 24 accumulators; per depth step
// two loads of the plane and a broadcast weight per channel); the weight gradient's tile is two depth
// steps by 8 or 12 channels, summed over a block of output rows.

extension ConvGeometry {
    /// Few input and output channels and output rows of at least 12: `ConvPath.stemRows`.
    public var isStemShape: Bool { c <= 4 && o <= 16 && outW >= 12 }
}

/// x (N, T, H, W, C) split into planes: for each input row (n, t, h), channel c and phase f of
/// the stride along W, `length` floats holding plane[margin + j] = x[n, t, h, j*sW + f, c] (zero
/// outside the row), j from -margin on. Kernel column l of output ow reads its plane (phase
/// `phase[l]`) at j = ow + shift[l].
struct StemPlanes {
    let storage: Storage
    let margin: Int, length: Int, phases: Int, perRow: Int
    /// Outputs along W rounded up to whole vectors: every tile's loads lie inside a plane.
    let paddedW: Int
    /// For depth step q = l*C + c of one (kt, kh) tap: where its values for output 0 lie in an
    /// input row's planes.
    let columnOffsets: [Int]

    init(_ x: UnsafePointer<Float>, _ g: ConvGeometry) {
        let sw = g.stride[2], pw = g.padding[2], kw = g.kernel[2], c = g.c, w = g.w
        let phase = (0..<kw).map { l in ((l - pw) % sw + sw) % sw }
        let shift = (0..<kw).map { l in (l - pw - phase[l]) / sw }
        let paddedW = (g.outW + 15) / 16 * 16
        let margin = max(0, -shift.min()!)
        let length = margin + paddedW + max(0, shift.max()!)
        let perRow = c * sw * length
        self.paddedW = paddedW; self.margin = margin; self.length = length; self.perRow = perRow
        phases = sw
        columnOffsets = (0..<(kw * c)).map { q in
            let l = q / c, channel = q % c
            return (channel * sw + phase[l]) * length + margin + shift[l]
        }
        let rows = g.n * g.t * g.h
        storage = Storage(uninitialized: rows * perRow)
        let out = storage.pointer
        parallelFor(rows, minPerThread: 64) { r0, r1 in
            for r in r0..<r1 {
                let src = x + r &* w &* c, dst = out + r &* perRow
                for channel in 0..<c {
                    for f in 0..<sw {
                        // plane[i] = x[(i - margin) * sW + f] from i = margin while that is inside the row, zero elsewhere
                        let plane = dst + (channel &* sw &+ f) &* length
                        let first = min(length, margin), inside: Int = (w - f + sw - 1) / sw
                        let end = max(first, min(length, margin + inside))
                        plane.update(repeating: 0, count: first)
                        var from = src + (f &* c &+ channel)
                        for i in first..<end { plane[i] = from.pointee; from += sw &* c }
                        (plane + end).update(repeating: 0, count: length &- end)
                    }
                }
            }
        }
    }

    /// The planes of input row (n, t, h) of a clip of T frames of H rows.
    @inline(__always)
    func row(_ index: Int) -> UnsafePointer<Float> { UnsafePointer(storage.pointer + index &* perRow) }
}

enum StemRows {
    /// Whether the 16-wide kernels run (an AVX-512 build, not forced to AVX2's), else the 8-wide.
    static var wide: Bool { Engine.options.avx512 && EngineOptions.packedGEMMPays }

    /// Output channels per tile: 12, or 8 where 12 would leave more of the last tile empty
    /// (8 channels, and 13-16 as two tiles of 8).
    static func tileChannels(_ o: Int) -> Int { o > 8 && o <= 12 ? 12 : 8 }

    /// The input rows output row `row` (n, ot, oh) reads, one per (kt, kh) tap inside the input,
    /// with the tap's index: `body(tap, inputRow)`.
    @inline(__always)
    static func forEachTap(_ g: ConvGeometry, outputRow row: Int, _ body: (Int, Int) -> Void) {
        let oh = row % g.outH, frame = row / g.outH, ot = frame % g.outT, n = frame / g.outT
        for a in 0..<g.kernel[0] {
            let ti = ot &* g.stride[0] &- g.padding[0] &+ a
            guard ti >= 0 && ti < g.t else { continue }
            for b in 0..<g.kernel[1] {
                let hi = oh &* g.stride[1] &- g.padding[1] &+ b
                guard hi >= 0 && hi < g.h else { continue }
                body(a &* g.kernel[1] &+ b, (n &* g.t &+ ti) &* g.h &+ hi)
            }
        }
    }

    /// Weights by depth step, `channels` output channels per chunk, zero-padded:
    /// packed[(chunk * K + p) * channels + j] = W[chunk * channels + j, p].
    static func packWeights(_ wt: UnsafePointer<Float>, o: Int, k: Int, channels: Int) -> Storage {
        let chunks = (o + channels - 1) / channels
        let packed = Storage(zeros: chunks * k * channels)
        for j in 0..<o {
            for p in 0..<k { packed.pointer[(j / channels * k + p) * channels + j % channels] = wt[j * k + p] }
        }
        return packed
    }

    /// A tile of one output row: tile[j * 32 + q] = sum over the taps' depth steps of
    /// plane(tap)[offset(step) + q] * weights(tap)[step * channels + j], for one or two vectors
    /// of outputs q and 8 or 12 channels j. AVX-512 takes two vectors of 16 (24 accumulators of
    /// 32 registers), AVX2 one of 8 (12 of 16).
    @_transparent
    static func forwardTile<V: SIMD>(_: V.Type, channels: Int, two: Bool, taps: Int, _ planes: UnsafePointer<UnsafePointer<Float>>,
                                     _ weights: UnsafePointer<UnsafePointer<Float>>, run: Int, _ offsets: UnsafePointer<Int>,
                                     _ tile: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        let vectorBytes = V.scalarCount &* 4
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V(), a8 = V(), a9 = V(), a10 = V(), a11 = V()
        var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V(), b6 = V(), b7 = V(), b8 = V(), b9 = V(), b10 = V(), b11 = V()
        for t in 0..<taps {
            let plane = UnsafeRawPointer(planes[t])
            var w = weights[t]
            for q in 0..<run {
                let at = offsets[q] &* 4
                let x0 = plane.loadUnaligned(fromByteOffset: at, as: V.self)
                let x1 = two ? plane.loadUnaligned(fromByteOffset: at &+ vectorBytes, as: V.self) : x0
                // each broadcast weight used at once by both vectors: the accumulators, 2 inputs and 1 weight in registers
                var s = V(repeating: w[0]); a0.addProduct(x0, s); if two { b0.addProduct(x1, s) }
                s = V(repeating: w[1]); a1.addProduct(x0, s); if two { b1.addProduct(x1, s) }
                s = V(repeating: w[2]); a2.addProduct(x0, s); if two { b2.addProduct(x1, s) }
                s = V(repeating: w[3]); a3.addProduct(x0, s); if two { b3.addProduct(x1, s) }
                s = V(repeating: w[4]); a4.addProduct(x0, s); if two { b4.addProduct(x1, s) }
                s = V(repeating: w[5]); a5.addProduct(x0, s); if two { b5.addProduct(x1, s) }
                s = V(repeating: w[6]); a6.addProduct(x0, s); if two { b6.addProduct(x1, s) }
                s = V(repeating: w[7]); a7.addProduct(x0, s); if two { b7.addProduct(x1, s) }
                if channels > 8 {
                    s = V(repeating: w[8]); a8.addProduct(x0, s); if two { b8.addProduct(x1, s) }
                    s = V(repeating: w[9]); a9.addProduct(x0, s); if two { b9.addProduct(x1, s) }
                    s = V(repeating: w[10]); a10.addProduct(x0, s); if two { b10.addProduct(x1, s) }
                    s = V(repeating: w[11]); a11.addProduct(x0, s); if two { b11.addProduct(x1, s) }
                }
                w += channels
            }
        }
        let out = UnsafeMutableRawPointer(tile)
        @inline(__always) func store(_ j: Int, _ low: V, _ high: V) {
            out.storeBytes(of: low, toByteOffset: j &* 128, as: V.self)
            if two { out.storeBytes(of: high, toByteOffset: j &* 128 &+ vectorBytes, as: V.self) }
        }
        store(0, a0, b0); store(1, a1, b1); store(2, a2, b2); store(3, a3, b3); store(4, a4, b4); store(5, a5, b5)
        store(6, a6, b6); store(7, a7, b7)
        if channels > 8 { store(8, a8, b8); store(9, a9, b9); store(10, a10, b10); store(11, a11, b11) }
    }

    /// Sums over `rows` output rows and `vectors` vectors of outputs each:
    /// acc[j][s] += gy_row[v][j] * plane_row[offset_s + v * lanes + lane] for the two depth steps
    /// s (the second dropped unless `pair`: AVX2's registers hold one) and 8 or 12 channels j,
    /// gy's row laid out as `channels` channel vectors per vector of outputs; then adds the
    /// accumulators into `partial` (vector (s, j) at partial + (s * partialStride + j) * lanes).
    @_transparent
    static func weightGradTile<V: SIMD>(_: V.Type, channels: Int, pair: Bool, rows: Int, _ planes: UnsafePointer<UnsafePointer<Float>>,
                                        _ gradients: UnsafePointer<UnsafePointer<Float>>, offset0: Int, offset1: Int,
                                        vectors: Int, _ partial: UnsafeMutablePointer<Float>, partialStride: Int) where V.Scalar == Float {
        let vectorBytes = V.scalarCount &* 4
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V(), a8 = V(), a9 = V(), a10 = V(), a11 = V()
        var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V(), b6 = V(), b7 = V(), b8 = V(), b9 = V(), b10 = V(), b11 = V()
        for r in 0..<rows {
            var x0p = UnsafeRawPointer(planes[r] + offset0), x1p = UnsafeRawPointer(planes[r] + offset1)
            var gp = UnsafeRawPointer(gradients[r])
            for _ in 0..<vectors {
                let x0 = x0p.loadUnaligned(as: V.self)
                let x1 = pair ? x1p.loadUnaligned(as: V.self) : x0
                @inline(__always) func g(_ j: Int) -> V { gp.load(fromByteOffset: j &* vectorBytes, as: V.self) }
                var d = g(0); a0.addProduct(d, x0); if pair { b0.addProduct(d, x1) }
                d = g(1); a1.addProduct(d, x0); if pair { b1.addProduct(d, x1) }
                d = g(2); a2.addProduct(d, x0); if pair { b2.addProduct(d, x1) }
                d = g(3); a3.addProduct(d, x0); if pair { b3.addProduct(d, x1) }
                d = g(4); a4.addProduct(d, x0); if pair { b4.addProduct(d, x1) }
                d = g(5); a5.addProduct(d, x0); if pair { b5.addProduct(d, x1) }
                d = g(6); a6.addProduct(d, x0); if pair { b6.addProduct(d, x1) }
                d = g(7); a7.addProduct(d, x0); if pair { b7.addProduct(d, x1) }
                if channels > 8 {
                    d = g(8); a8.addProduct(d, x0); if pair { b8.addProduct(d, x1) }
                    d = g(9); a9.addProduct(d, x0); if pair { b9.addProduct(d, x1) }
                    d = g(10); a10.addProduct(d, x0); if pair { b10.addProduct(d, x1) }
                    d = g(11); a11.addProduct(d, x0); if pair { b11.addProduct(d, x1) }
                }
                x0p += vectorBytes; x1p += vectorBytes; gp += channels &* vectorBytes
            }
        }
        let out = UnsafeMutableRawPointer(partial)
        @inline(__always) func add(_ s: Int, _ j: Int, _ v: V) {
            let at = (s &* partialStride &+ j) &* vectorBytes
            out.storeBytes(of: out.loadUnaligned(fromByteOffset: at, as: V.self) + v, toByteOffset: at, as: V.self)
        }
        add(0, 0, a0); add(0, 1, a1); add(0, 2, a2); add(0, 3, a3); add(0, 4, a4); add(0, 5, a5); add(0, 6, a6); add(0, 7, a7)
        if channels > 8 { add(0, 8, a8); add(0, 9, a9); add(0, 10, a10); add(0, 11, a11) }
        if pair {
            add(1, 0, b0); add(1, 1, b1); add(1, 2, b2); add(1, 3, b3); add(1, 4, b4); add(1, 5, b5); add(1, 6, b6); add(1, 7, b7)
            if channels > 8 { add(1, 8, b8); add(1, 9, b9); add(1, 10, b10); add(1, 11, b11) }
        }
    }
}

/// y (N, oT, oH, oW, O) = conv(x, W), output row by output row on the planes of x.
func stemRowsForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let planes = StemPlanes(x, g)
    let k = g.columns, o = g.o, run = g.kernel[2] * g.c, taps = g.kernel[0] * g.kernel[1]
    let channels = StemRows.tileChannels(o), chunks = (o + channels - 1) / channels
    let packed = StemRows.packWeights(wt, o: o, k: k, channels: channels)
    let outRows = g.n * g.outT * g.outH, outW = g.outW
    // AVX-512: tiles of up to 32 outputs (two vectors of 16); AVX2: of 8 (one vector).
    let wide = StemRows.wide, tileWidth = wide ? 32 : 8
    planes.columnOffsets.withUnsafeBufferPointer { offsets in
        parallelClaims(outRows, grain: claimGrain(outRows)) { claims in
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 2 * taps) { table in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 12 * 32) { tileBuffer in
                    let rowPlanes = table.baseAddress!, rowWeights = table.baseAddress! + taps, tile = tileBuffer.baseAddress!
                    let offsets = offsets.baseAddress!
                    for claimed in claims {
                        for row in claimed {
                            for chunk in 0..<chunks {
                                var live = 0
                                StemRows.forEachTap(g, outputRow: row) { tap, inputRow in
                                    rowPlanes[live] = planes.row(inputRow)
                                    rowWeights[live] = UnsafePointer(packed.pointer) + (chunk * k + tap * run) * channels
                                    live += 1
                                }
                                let count = min(channels, o - chunk * channels)
                                for ow0 in stride(from: 0, to: outW, by: tileWidth) {
                                    let width = min(tileWidth, outW - ow0)
                                    if ow0 > 0 { for t in 0..<live { rowPlanes[t] += tileWidth } }
                                    switch (wide, channels, width > 16) {
                                    case (true, 12, true): StemRows.forwardTile(SIMD16<Float>.self, channels: 12, two: true, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    case (true, 12, false): StemRows.forwardTile(SIMD16<Float>.self, channels: 12, two: false, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    case (true, _, true): StemRows.forwardTile(SIMD16<Float>.self, channels: 8, two: true, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    case (true, _, false): StemRows.forwardTile(SIMD16<Float>.self, channels: 8, two: false, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    case (false, 12, _): StemRows.forwardTile(SIMD8<Float>.self, channels: 12, two: false, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    case (false, _, _): StemRows.forwardTile(SIMD8<Float>.self, channels: 8, two: false, taps: live, rowPlanes, rowWeights, run: run, offsets, tile)
                                    }
                                    let dst = y + (row * outW + ow0) * o + chunk * channels
                                    for q in 0..<width {
                                        for j in 0..<count { dst[q &* o &+ j] = tile[j &* 32 &+ q] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// gW (O, kT, kH, kW, C) = sum over output positions of gy times the input each tap reads,
/// per block of output rows: gy's rows transposed (channels by outputs along W, zero past
/// the row's end), then each tile of one or two depth steps by 8 or 12 channels summed over the
/// block's rows in vectors of outputs. Partial sums per grain, added in order, their lanes
/// summed at the end.
func stemRowsWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let planes = StemPlanes(x, g)
    let k = g.columns, o = g.o, run = g.kernel[2] * g.c, taps = g.kernel[0] * g.kernel[1]
    let channels = StemRows.tileChannels(o), chunks = (o + channels - 1) / channels, paddedO = chunks * channels
    // AVX-512: vectors of 16 outputs and two depth steps a tile; AVX2: of 8, one step.
    let wide = StemRows.wide, lanes = wide ? 16 : 8, stepsPerTile = wide ? 2 : 1
    let outRows = g.n * g.outT * g.outH, outW = g.outW, paddedW = planes.paddedW, vectors = (outW + lanes - 1) / lanes
    let blockRows = 16, blocks = (outRows + blockRows - 1) / blockRows
    // Partial (K x paddedO) vectors.
    let partialFloats = k * paddedO * lanes
    // Two grains per thread: the partials are large (K x O vectors), and each is added up at the end.
    let wanted = min(blocks, 2 * Engine.threads), grain = (blocks + wanted - 1) / wanted, grains = (blocks + grain - 1) / grain
    let partials = (0..<grains).map { _ in Storage(zeros: partialFloats) }
    planes.columnOffsets.withUnsafeBufferPointer { offsets in
        parallelClaims(blocks, grain: grain) { claims in
            // Zero once: each block writes only the outputs and channels that exist.
            let transposed = Storage(zeros: blockRows * paddedO * paddedW)
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 2 * blockRows) { table in
                let rowPlanes = table.baseAddress!, rowGradients = table.baseAddress! + blockRows
                for claimed in claims {
                    let partial = partials[claimed.lowerBound / grain].pointer
                    for block in claimed {
                        let r0 = block * blockRows, r1 = min(outRows, r0 + blockRows)
                        // gy's rows by chunk of channels, vector of outputs, channel: output q of channel
                        // j at ((j / ch * vectors + q / lanes) * ch + j % ch) * lanes + q % lanes,
                        // zero past the row's end and the channels
                        let gyT = transposed.pointer
                        for r in r0..<r1 {
                            let src = gy + r * outW * o, dst = gyT + (r - r0) * paddedO * paddedW
                            for j in 0..<o {
                                let channel = dst + (j / channels * vectors * channels + j % channels) * lanes
                                for v in 0..<vectors {
                                    let to = channel + v &* channels &* lanes
                                    let from = src + (v &* lanes &* o &+ j)
                                    for lane in 0..<min(lanes, outW &- v &* lanes) { to[lane] = from[lane &* o] }
                                }
                            }
                        }
                        for tap in 0..<taps {
                            var live = 0
                            for r in r0..<r1 {
                                StemRows.forEachTap(g, outputRow: r) { t, inputRow in
                                    guard t == tap else { return }
                                    rowPlanes[live] = planes.row(inputRow)
                                    rowGradients[live] = UnsafePointer(gyT + (r - r0) * paddedO * paddedW)
                                    live += 1
                                }
                            }
                            guard live > 0 else { continue }
                            for chunk in 0..<chunks {
                                if chunk > 0 { for i in 0..<live { rowGradients[i] += vectors * channels * lanes } }
                                for q in stride(from: 0, to: run, by: stepsPerTile) {
                                    let p = tap * run + q, into = partial + (p * paddedO + chunk * channels) * lanes
                                    let pair = wide && q + 1 < run, offset0 = offsets[q], offset1 = offsets[pair ? q + 1 : q]
                                    switch (wide, channels, pair) {
                                    case (true, 12, true): StemRows.weightGradTile(SIMD16<Float>.self, channels: 12, pair: true, rows: live, rowPlanes, rowGradients,
                                                                                   offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    case (true, 12, false): StemRows.weightGradTile(SIMD16<Float>.self, channels: 12, pair: false, rows: live, rowPlanes, rowGradients,
                                                                                    offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    case (true, _, true): StemRows.weightGradTile(SIMD16<Float>.self, channels: 8, pair: true, rows: live, rowPlanes, rowGradients,
                                                                                  offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    case (true, _, false): StemRows.weightGradTile(SIMD16<Float>.self, channels: 8, pair: false, rows: live, rowPlanes, rowGradients,
                                                                                   offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    case (false, 12, _): StemRows.weightGradTile(SIMD8<Float>.self, channels: 12, pair: false, rows: live, rowPlanes, rowGradients,
                                                                                 offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    case (false, _, _): StemRows.weightGradTile(SIMD8<Float>.self, channels: 8, pair: false, rows: live, rowPlanes, rowGradients,
                                                                                offset0: offset0, offset1: offset1, vectors: vectors, into, partialStride: paddedO)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // In grain order, then the lanes of each (p, j): gW[j, p].
    parallelFor(k, minPerThread: 16) { p0, p1 in
        for p in p0..<p1 {
            for j in 0..<o {
                let at = (p * paddedO + j) * lanes
                var sum: Float = 0
                for lane in 0..<lanes {
                    var value = partials[0].pointer[at + lane]
                    for partial in partials.dropFirst() { value += partial.pointer[at + lane] }
                    sum += value
                }
                gw[j * k + p] = sum
            }
        }
    }
}
