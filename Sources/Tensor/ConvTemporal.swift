import Foundation

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
        sgemm(false, true, frames * hw, g.o, g.c, 1, x + input, g.c, wt + i * g.c, kt * g.c, 1, y + output, g.o)
    }
}

/// gx[n, ot - pT + i] += gy[n, ot] W_i.
func temporalInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0]
    gx.update(repeating: 0, count: g.n * g.t * hw * g.c)
    forEachTemporalTap(g) { i, frames, input, output in
        sgemm(false, false, frames * hw, g.c, g.o, 1, gy + output, g.o, wt + i * g.c, kt * g.c, 1, gx + input, g.c)
    }
}

/// gW_i (O x C, row stride kT*C) = sum over n of gy[n, frames]^T x[n, frames shifted by the tap].
/// Products wide enough are split by `sgemm`; narrow ones (O x C under 32 per thread either
/// way, deep over a sample's frames) are shared instead: each thread takes a run of the (tap,
/// sample) products into a partial of its own, the partials added in order.
func temporalWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let hw = g.h * g.w, kt = g.kernel[0], c = g.c, o = g.o, size = o * kt * c
    guard max(o, c) < 32 * Engine.threads else {
        gw.update(repeating: 0, count: size)
        forEachTemporalTap(g) { i, frames, input, output in
            sgemm(true, false, o, c, frames * hw, 1, gy + output, o, x + input, c, 1, gw + i * c, kt * c)
        }
        return
    }
    var products: [(tap: Int, frames: Int, input: Int, output: Int)] = []
    for i in 0..<kt {
        let frames = g.validFrames(tap: i)
        guard !frames.isEmpty else { continue }
        for n in 0..<g.n {
            products.append((i, frames.count, (n * g.t + frames.lowerBound - g.padding[0] + i) * hw * c, (n * g.outT + frames.lowerBound) * hw * o))
        }
    }
    let parts = max(1, min(Engine.threads, products.count))
    let partials = Storage(zeros: (parts - 1) * size)
    gw.update(repeating: 0, count: size)
    parallelClaims(parts, grain: 1) { claims in
        for part in claims.joined() {
            let out = part == 0 ? gw : partials.pointer + (part - 1) * size
            for p in products[(part * products.count / parts)..<((part + 1) * products.count / parts)] {
                singleThreadSgemm(true, false, o, c, p.frames * hw, 1, gy + p.output, o, x + p.input, c, 1, out + p.tap * c, kt * c)
            }
        }
    }
    for part in 1..<parts {
        let partial = partials.pointer + (part - 1) * size
        for j in 0..<size { gw[j] += partial[j] }
    }
}

/// Units of work of a few frames of one sample (of `frames`), at least 2048 rows when a clip
/// has them, so few units end in a partial tile or need a packing buffer of their own.
/// Returns frames per unit and units per sample.
func frameUnits(frames: Int, rowsPerFrame: Int) -> (framesPerUnit: Int, unitsPerSample: Int) {
    let framesPerUnit = min(frames, max(1, (2048 + rowsPerFrame - 1) / rowsPerFrame))
    return (framesPerUnit, (frames + framesPerUnit - 1) / framesPerUnit)
}

/// The units threads claim in the blocked temporal convs: a few output frames of one sample.
func temporalUnits(_ g: ConvGeometry) -> (framesPerUnit: Int, unitsPerSample: Int) {
    frameUnits(frames: g.outT, rowsPerFrame: g.h * g.w)
}

/// The temporal forward on our packed GEMM (`ConvPath.temporalBlocked`): y[n, frames] +=
/// x[n, frames + shift] W_i^T with each tap's weights packed once and threads claiming a few
/// frames at a time (`temporalUnits`), where `sgemm` would split every per-sample product
/// across threads and pack the tap's weights for each. Per output element the taps still add
/// in order. The input gradient goes the implicit way instead (`implicitTemporalInputGrad`).
func blockedTemporalForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
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

/// The temporal weight gradient on our packed GEMM (`ConvPath.temporalBlocked`): threads claim a few
/// frames of a sample at a time (`temporalUnits`) and accumulate gW_i^T (C x O) += x[n, frames +
/// shift]^T gy[n, frames] per tap, the input frames read in place and only gy's frames packed
/// (the smaller operand when O <= C, as in R(2+1)D's mid-channel convs); the grains' partials
/// are summed and transposed into gW (O, kT, C).
func blockedTemporalWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
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

/// The temporal convs' input gradient as an implicit GEMM (`ConvPath.temporalImplicit`): gx row
/// (n, t, hw) = sum over taps i of gy[n, t + pT - i, hw] W_i, i.e. the kT runs of O values of
/// gy it reads (zeros past the clip's ends) against the taps' weights stacked (kT*O x C), in
/// one pass, where per tap each product is only O deep and adds into gx. For the forward the
/// blocked path's 12-row tiles are the better fit (`maclr bench conv` compares them).
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
