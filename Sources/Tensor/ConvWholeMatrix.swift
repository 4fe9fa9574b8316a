import Foundation

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

/// The im2col columns the whole-matrix paths multiply for `rows`: only the live taps' when every
/// row reads the same taps (a one-frame layer padded by one over time reads only its centre
/// tap), else all: one GEMM over all rows rather than one per stretch of frames.
func uniformLiveColumns(_ g: ConvGeometry, rows: Range<Int>) -> Range<Int> {
    var stretches: [Range<Int>] = []
    forEachLiveTapStretch(g, rows: rows) { _, taps in stretches.append(taps) }
    return stretches.count == 1 ? g.columns(temporalTaps: stretches[0]) : 0..<g.columns
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

/// The whole-matrix paths: the input of all samples (or as many as fit 128 MiB at a time)
/// expanded into one im2col matrix, one `sgemm` over it, and col2im for the input gradient.
/// The plainest conv of the engine and the reference the tests hold the other paths against.

/// One chunk of samples of the whole-matrix paths: its samples, its first im2col row and row
/// count, the columns its GEMM multiplies (`uniformLiveColumns`), and a buffer of rows x K.
struct WholeMatrixChunk {
    let samples: Range<Int>, firstRow: Int, rows: Int, live: Range<Int>
    let buffer: UnsafeMutablePointer<Float>
    var isFirst: Bool { samples.lowerBound == 0 }
}

/// Calls `body` for each chunk of samples whose im2col matrix fits the budget, in order, with
/// one buffer for all of them.
func forEachWholeMatrixChunk(_ g: ConvGeometry, _ body: (WholeMatrixChunk) -> Void) {
    let per = samplesPerChunk(g)
    let buffer = Storage(uninitialized: per * g.rowsPerSample * g.columns)
    for n0 in stride(from: 0, to: g.n, by: per) {
        let samples = n0..<min(g.n, n0 + per)
        let first = n0 * g.rowsPerSample, rows = samples.count * g.rowsPerSample
        body(WholeMatrixChunk(samples: samples, firstRow: first, rows: rows, live: uniformLiveColumns(g, rows: first..<(first + rows)),
                              buffer: buffer.pointer))
    }
}

/// y (rows x O) = cols (rows x K) W^T.
func wholeMatrixForward(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<Float>) {
    let k = g.columns
    forEachWholeMatrixChunk(g) { c in
        im2col(x, g, samples: c.samples, c.buffer)
        sgemm(false, true, c.rows, g.o, c.live.count, 1, c.buffer + c.live.lowerBound, k, wt + c.live.lowerBound, k, 0, y + c.firstRow * g.o, g.o)
    }
}

/// gx = col2im(gy W); col2im skips the columns of taps in the padding.
func wholeMatrixInputGrad(_ gy: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ g: ConvGeometry, _ gx: UnsafeMutablePointer<Float>) {
    let k = g.columns
    gx.update(repeating: 0, count: g.n * g.t * g.h * g.w * g.c)
    forEachWholeMatrixChunk(g) { c in
        sgemm(false, false, c.rows, c.live.count, g.o, 1, gy + c.firstRow * g.o, g.o, wt + c.live.lowerBound, k, 0, c.buffer + c.live.lowerBound, k)
        col2imAdd(c.buffer, g, samples: c.samples, gx)
    }
}

/// gW (O x K) = gy^T cols; the columns of gW outside the live ones are zero (the GEMM writes the others).
func wholeMatrixWeightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ g: ConvGeometry, _ gw: UnsafeMutablePointer<Float>) {
    let k = g.columns
    forEachWholeMatrixChunk(g) { c in
        im2col(x, g, samples: c.samples, c.buffer)
        if c.isFirst && c.live.count < k {
            for i in 0..<g.o {
                let row = gw + i * k
                row.update(repeating: 0, count: c.live.lowerBound)
                (row + c.live.upperBound).update(repeating: 0, count: k - c.live.upperBound)
            }
        }
        sgemm(true, false, g.o, c.live.count, c.rows, 1, gy + c.firstRow * g.o, g.o, c.buffer + c.live.lowerBound, k, c.isFirst ? 0 : 1,
              gw + c.live.lowerBound, k)
    }
}
