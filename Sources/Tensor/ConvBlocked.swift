import Foundation

/// The GEMMs of the blocked paths: our packed GEMM (an AVX-512 build's), or OpenBLAS
/// single-threaded inside our threads on larger blocks (an AVX2 build's, where the alternative
/// is one whole-matrix GEMM: writing and re-reading the whole im2col matrix cost more there).
enum BlockGEMM {
    static var packed: Bool { Engine.options.blockedConvs }
    /// Rows per block of the forward and input gradient (multiplied at once), and of the weight
    /// gradient (the depth of its product).
    static var rows: Int { packed ? PackedGEMM.mc : 512 }
    static var depth: Int { packed ? PackedGEMM.kc : 1024 }
}

/// y (rows x O) = im2col(x) W^T without the im2col matrix: each thread expands blocks of
/// `BlockGEMM.rows` rows into a buffer that stays in L2 and multiplies it at once by W^T (packed
/// once for all blocks on our GEMM), instead of writing the whole matrix (hundreds of MB on a
/// full-width network's first layers) to memory and reading it back.
func blockedIm2colForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let k = g.columns, rows = g.n * g.rowsPerSample, block = BlockGEMM.rows, o = g.o
    let weights = BlockGEMM.packed ? PackedGEMM.PackedB(true, wt, k, k: k, n: o) : nil
    let blocks = (rows + block - 1) / block
    parallelClaims(blocks, grain: claimGrain(blocks)) { claims in
        let buffer = Storage(uninitialized: block * k)
        for claimed in claims {
            for b in claimed {
                let r0 = b * block, r1 = min(rows, r0 + block)
                im2colRows(x, g, rows: r0..<r1, buffer.pointer)
                // Taps that read only padding skipped (their columns are zeros).
                forEachLiveTapStretch(g, rows: r0..<r1) { rows, taps in
                    let a = buffer.pointer + (rows.lowerBound - r0) * k, live = g.columns(temporalTaps: taps), out = y + rows.lowerBound * o
                    if let weights {
                        PackedGEMM.multiply(false, rows.count, 1, a, k, weights, depth: live, accumulate: false, out, o)
                    } else {
                        singleThreadSgemm(false, true, rows.count, o, live.count, 1, a + live.lowerBound, k, wt + live.lowerBound, k, 0, out, o)
                    }
                }
            }
        }
    }
}

/// gW (O x K) = gy^T im2col(x) without the im2col matrix: each thread expands blocks of
/// `BlockGEMM.depth` rows into a buffer and accumulates gW^T (K x O) = im2col^T gy over its
/// blocks, so the expanded block is the product's A, read in place, and only gy's block
/// (rows x O, small) is packed: as gy^T im2col, the block itself would be packed, each packed
/// value serving only O multiply-adds.
/// Threads claim grains of blocks; the grains' partials are summed and transposed at the end.
func blockedIm2colWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let k = g.columns, o = g.o, rows = g.n * g.rowsPerSample, block = BlockGEMM.depth, packed = BlockGEMM.packed
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
                let gyBlock = packed ? PackedGEMM.PackedB(false, gy + r0 * o, o, k: r1 - r0, n: o) : nil
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
                    let columns = g.columns(temporalTaps: i..<(i + 1)), partial = out + columns.lowerBound * o
                    if depth.isEmpty && !first { continue }
                    if let gyBlock {
                        PackedGEMM.multiply(true, columns.count, 1, buffer.pointer + columns.lowerBound, k, gyBlock, depth: depth,
                                            accumulate: !first, partial, o)
                    } else if depth.isEmpty {
                        partial.update(repeating: 0, count: columns.count * o)
                    } else {
                        singleThreadSgemm(true, false, columns.count, o, depth.count, 1, buffer.pointer + depth.lowerBound * k + columns.lowerBound, k,
                                          gy + (r0 + depth.lowerBound) * o, o, first ? 0 : 1, partial, o)
                    }
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

/// gx = col2im(gy W) without the im2col-shaped matrix: threads claim units that never write the
/// same input element (whole samples; a few frames of one when each output frame reads only its
/// own input frame, as in 1xkxk convs); each multiplies blocks of `BlockGEMM.rows` rows by W
/// (packed once for all on our GEMM) into an L2-sized buffer and adds it back into gx at once.
func blockedCol2imInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let k = g.columns, block = BlockGEMM.rows, o = g.o
    let weights = BlockGEMM.packed ? PackedGEMM.PackedB(false, wt, k, k: o, n: k) : nil
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
                    let a = gy + rows.lowerBound * o, live = g.columns(temporalTaps: taps), cols = buffer.pointer + (rows.lowerBound - r0) * k
                    if let weights {
                        PackedGEMM.multiply(false, rows.count, 1, a, o, weights, columns: live, accumulate: false, cols, k)
                    } else {
                        singleThreadSgemm(false, false, rows.count, live.count, o, 1, a, o, wt + live.lowerBound, k, 0, cols + live.lowerBound, k)
                    }
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
