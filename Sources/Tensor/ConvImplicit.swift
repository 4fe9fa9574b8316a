import Foundation

/// y (rows x O) = im2col(x) W^T with no im2col row written: each tile of `PackedGEMM.indirectRows` output
/// positions reads its kT*kH input runs of kW*C values where they lie (`PackedGEMM.indirectTile`),
/// through a table of pointers: runs in the padding point at zeros; only a run cut by the left
/// or right border is assembled in a small buffer. On the quickstart's narrow layers (3-16
/// channels) writing and re-reading the im2col block cost more than the multiply-adds.
func implicitForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
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

/// Points `pointers[tap * tableStride + i]` at the input run (kW*C values) that im2col row
/// `rows.lowerBound + i` reads for kernel tap `tap` = (kt, kh): in x, at `zeros` where the run
/// lies in the padding (and for rows past the end of a partial tile), or in `border` where the
/// left or right padding cuts it and it is assembled there. Works a stretch of rows within one
/// output row at a time, tap by tap, so the table costs little beside the multiply-adds even
/// on the stems (few channels, many taps).
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

/// gW^T (K x O) = im2col^T gy with no im2col block written: per block of `PackedGEMM.kc`
/// output positions, a table points at each position's input runs (`pointRuns`), and each
/// 12-row tile of gW^T (12 values of one tap's run) gathers its depth step from the position's
/// run (`PackedGEMM.gatherTile`) against gy's block, packed. Partials per grain, summed and
/// transposed at the end as in `blockedIm2colWeightGrad`.
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
