/// Our own single-threaded GEMM, for the conv paths that multiply as they expand
/// (`ConvPath.blockedIm2col`, `.implicitGEMM`, `.temporalBlocked`, `.temporalImplicit`): blocks
/// of im2col rows, or tables of pointers into the input, against weights packed once. Every
/// other product goes to OpenBLAS (`sgemm`); `PackedGEMM.sgemm` stays as the plain entry the
/// tests hold the kernels to.
///
/// The usual blocking (Goto/BLIS): C (m x n) is computed in tiles of `mr x nr`; the depth is cut
/// into slices of `kc`, the rows into blocks of `mc`. The microkernel keeps a whole tile in
/// registers: 12 rows x 2 vectors of 16 = 24 accumulators, 2 loads of B's row and 12 broadcasts
/// of A's column per depth step for 24 FMAs. It reads each operand in place where it can and
/// from a packed (copied, depth-major, zero-padded) panel where it cannot (see `sgemm`). Each
/// tile of C sums its depth in order, slice by slice. A narrow tail of columns is computed at
/// full vector width instead (`rowDots`, `columnTail`). The implicit-GEMM kernels at the end
/// (`indirectTile`, `gatherTile`) read A's rows or depth steps through tables of pointers, for
/// convs that skip im2col.
public enum PackedGEMM {
    typealias Vector = SIMD16<Float>
    public static let mr = 12, nr = 32
    /// A slice of B's panel, kc x nr floats (32 KiB), stays in L1 while A's tiles stream past it.
    public static let kc = 256
    /// A block of A, mc x kc floats (96 KiB), stays in L2 while B's panels pass.
    static let mc = 96

    /// C (m x n) = alpha op(A) op(B) + beta C, row-major with leading dimensions as stored.
    public static func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        guard m > 0, n > 0 else { return }
        if beta != 0 && beta != 1 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        }
        if k == 0 {
            if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let packed = PackedB(transB, b, ldb, k: k, n: n)
        multiply(transA, m, alpha, a, lda, packed, accumulate: beta != 0, c, ldc)
    }

    /// op(B) (k x n) packed once for many products: for each depth slice of kc, panels of nr
    /// columns, each depth-major (depth x nr), the last zero-padded. B is always packed: read in
    /// place, its rows sit ldb apart, and at strides near a multiple of 4 KiB they fall into a
    /// few L1 sets.
    public struct PackedB {
        let storage: Storage
        let k: Int, n: Int
        /// Depth of each slice but the last: `kc`, or whole runs of an implicit conv's input.
        let sliceDepth: Int
        var panels: Int { (n + nr - 1) / nr }

        /// op(B)'s columns from `tailStart` on (fewer than 16 after the last whole half panel),
        /// transposed: column j's k values contiguous at `tail + (j - tailStart) * k`. Narrow
        /// edges are computed from these as dot products with A's rows (`rowDots`) or down C's
        /// columns (`columnTail`).
        let tail: Storage?
        let tailStart: Int

        public init(_ transB: Bool, _ b: UnsafePointer<Float>, _ ldb: Int, k: Int, n: Int, sliceDepth: Int? = nil) {
            self.k = k; self.n = n
            let sliceDepth = sliceDepth ?? kc
            self.sliceDepth = sliceDepth
            tailStart = n / (nr / 2) * (nr / 2)
            // Only a tail `multiply` may take by dots or by columns (a whole tail of 9-15, as in
            // the stems, stays with the half kernel).
            let tailColumns = n - tailStart
            if tailColumns > 0 && tailColumns <= max(maxDotColumns, maxColumnTail) && (tailStart > 0 || tailColumns <= maxDotColumns) {
                let t = Storage(uninitialized: tailColumns * k), out = t.pointer
                if transB {
                    for j in 0..<tailColumns { (out + j &* k).update(from: b + (tailStart &+ j) &* ldb, count: k) }
                } else {
                    // B's rows read in order, the tail's columns written k apart
                    for p in 0..<k {
                        let row = b + (p &* ldb &+ tailStart)
                        for j in 0..<tailColumns { out[j &* k &+ p] = row[j] }
                    }
                }
                tail = t
            } else {
                tail = nil
            }
            // From the buffer pool: the same sizes come back every step.
            storage = Storage(uninitialized: max(1, (n + nr - 1) / nr * nr * k))
            for p0 in stride(from: 0, to: k, by: sliceDepth) {
                packB(transB, b, ldb, depth: p0..<min(k, p0 + sliceDepth), columns: 0..<n, into: slice(p0))
            }
        }

        /// The slice starting at depth p0 (its panels are `nr * depth` floats apart).
        func slice(_ p0: Int) -> UnsafeMutablePointer<Float> { storage.pointer + p0 * panels * nr }
    }

    /// C (m x n) (+)= alpha op(A) B with B packed, single-threaded. A is read in place (each tile
    /// broadcasts element [i, p] from either layout, so the copy of packing it is saved); only
    /// alpha != 1 and the partial tiles at the bottom edge pack A.
    ///
    /// `depth`: the only depth steps whose terms can be non-zero (A's columns outside it are
    /// zero, as where a conv's temporal taps fall in the padding); the others are skipped, which
    /// leaves every sum bit for bit what it was (x + 0 = x). `columns`: the only columns of C the
    /// caller reads; whole panels of nr columns outside it are not computed.
    public static func multiply(_ transA: Bool, _ m: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                                _ b: PackedB, depth live: Range<Int>? = nil, columns wanted: Range<Int>? = nil,
                                accumulate: Bool, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let k = b.k, n = b.n
        let live = live.map { $0.clamped(to: 0..<k) } ?? 0..<k, wanted = wanted ?? 0..<n
        let directA = alpha == 1
        let aRowStride = transA ? 1 : lda, aDepthStride = transA ? lda : 1
        // A panel buffer only when some tile packs: the blocked-im2col convs call this once per
        // block of full tiles, and each needless buffer was a trip through the pool's lock.
        // (mc is a multiple of mr, so only the last block can end in a partial tile.)
        let packedAStorage = !directA || m % mr != 0 ? Storage(uninitialized: mc * kc) : nil
        let packedA = packedAStorage?.pointer
        defer { withExtendedLifetime(packedAStorage) {} }
        // A transposed in place (weight gradients): a narrow tail of B's columns after whole
        // panels is computed down C's columns instead (`columnTail`), A's contiguous rows as the
        // vectors. With no whole panel before it, as in the stems' 8-11 columns, the half
        // kernel's tiles are all there is, and the tail's scattered stores and partial row
        // vectors would cost more.
        let tailByColumns = transA && b.tail != nil && b.tailStart > 0 && n - b.tailStart <= maxColumnTail
        precondition(b.sliceDepth == kc, "PackedGEMM.multiply takes B packed in slices of kc")
        var add = accumulate
        for s0 in stride(from: 0, to: k, by: kc) {
            // The live part of this slice: depth steps p0..<p0+depth, panels sliceDepth * nr apart.
            let sliceDepth = min(kc, k - s0), depthRange = (s0..<(s0 + sliceDepth)).clamped(to: live)
            guard !depthRange.isEmpty else { continue }
            let p0 = depthRange.lowerBound, depth = depthRange.count
            // The first slice computed writes C unless accumulating; every later one adds to it.
            defer { add = true }
            let packedB = UnsafePointer(b.slice(s0)) + (p0 - s0) * nr
            for i0 in stride(from: 0, to: m, by: mc) {
                let rows = min(mc, m - i0)
                let firstPackedRow = directA ? rows / mr * mr : 0
                if firstPackedRow < rows {
                    packA(transA, a, lda, alpha, rows: (i0 + firstPackedRow)..<(i0 + rows), depth: depthRange,
                          into: packedA! + firstPackedRow * depth)
                }
                for jp in 0..<b.panels {
                    let j0 = jp * nr, cols = min(nr, (tailByColumns ? b.tailStart : n) - j0)
                    guard cols > 0, j0 < wanted.upperBound, j0 + nr > wanted.lowerBound else { continue }
                    let panelB = packedB + jp * nr * sliceDepth
                    for ip in stride(from: 0, to: rows, by: mr) {
                        let tileRows = min(mr, rows - ip)
                        let (panelA, aRow, aDepth) = ip < firstPackedRow
                            ? (a + (i0 + ip) * aRowStride + p0 * aDepthStride, aRowStride, aDepthStride)
                            : (UnsafePointer(packedA!) + ip * depth, 1, mr)
                        let tile = c + (i0 + ip) * ldc + j0
                        if tileRows == mr && cols == nr {
                            kernel(depth, panelA, aRow, aDepth, panelB, tile, ldc, add: add)
                        } else if let tail = b.tail, aDepth == 1, ip < firstPackedRow, j0 + cols > b.tailStart,
                                  n - b.tailStart <= maxDotColumns {
                            // A's rows contiguous: the narrow tail as dot products, after any
                            // whole half panel before it.
                            let half = b.tailStart - j0
                            if half > 0 {
                                halfKernel(depth, panelA, aRow, aDepth, panelB, tile, ldc, add: add)
                            }
                            rowDots(depth, panelA, aRow, rows: tileRows, tail.pointer + p0, k, columns: n - b.tailStart,
                                    tile + half, ldc, add: add)
                        } else if tileRows == mr && cols == nr / 2 {
                            // 16 columns (narrow layers, or 144 = 4 x 32 + 16): no scratch tile
                            halfKernel(depth, panelA, aRow, aDepth, panelB, tile, ldc, add: add)
                        } else {
                            edgeTile(depth, panelA, aRow, aDepth, panelB, tile, ldc,
                                     rows: tileRows, columns: cols, add: add)
                        }
                    }
                }
                if tailByColumns, let tail = b.tail {
                    columnTail(depth, a + p0 * lda + i0, lda, rows: rows, tail.pointer + p0, k, columns: n - b.tailStart,
                               alpha: alpha, c + i0 * ldc + b.tailStart, ldc, add: add)
                }
            }
        }
        if !add {
            // nothing live and not accumulating: C = 0
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
        }
    }

    /// op(A)[rows, depth] * alpha into panels of mr rows, each depth-major (depth x mr).
    static func packA(_ transA: Bool, _ a: UnsafePointer<Float>, _ lda: Int, _ alpha: Float,
                      rows: Range<Int>, depth: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        pack(a, lda, linesContiguous: transA, scale: alpha, lines: rows, depth: depth, width: mr, into: dst)
    }

    /// op(B)[depth, columns] into panels of nr columns, each depth-major (depth x nr).
    static func packB(_ transB: Bool, _ b: UnsafePointer<Float>, _ ldb: Int,
                      depth: Range<Int>, columns: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        pack(b, ldb, linesContiguous: !transB, scale: 1, lines: columns, depth: depth, width: nr, into: dst)
    }

    /// Lines `lines` (A's rows or B's columns) over `depth` into panels of `width` lines, each
    /// depth-major (depth x width), times `scale`, the last panel padded with zero lines.
    /// Element (line l, depth p) is src[p * ld + l] when `linesContiguous`, else src[l * ld + p].
    static func pack(_ src: UnsafePointer<Float>, _ ld: Int, linesContiguous: Bool, scale: Float,
                     lines: Range<Int>, depth: Range<Int>, width: Int, into dst: UnsafeMutablePointer<Float>) {
        let kd = depth.count
        for (panel, l0) in stride(from: lines.lowerBound, to: lines.upperBound, by: width).enumerated() {
            let out = dst + panel * width * kd
            let valid = min(width, lines.upperBound - l0)
            if linesContiguous {
                // each depth step reads `valid` contiguous values
                for p in 0..<kd {
                    let from = src + (depth.lowerBound + p) * ld + l0, o = out + p * width
                    for l in 0..<valid { o[l] = scale * from[l] }
                    for l in valid..<width { o[l] = 0 }
                }
            } else {
                // each line is contiguous over the depth
                for l in 0..<valid {
                    let from = src + (l0 + l) * ld + depth.lowerBound
                    for p in 0..<kd { out[p * width + l] = scale * from[p] }
                }
                for l in valid..<width { for p in 0..<kd { out[p * width + l] = 0 } }
            }
        }
    }

    /// A tile at C's bottom or right edge (both panels zero-padded to whole tiles): the kernel
    /// into a scratch tile, then its valid part. Up to 16 columns need only the half-width kernel.
    static func edgeTile(_ depth: Int, _ panelA: UnsafePointer<Float>, _ aRow: Int, _ aDepth: Int,
                         _ panelB: UnsafePointer<Float>,
                         _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, columns: Int, add: Bool) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { scratch in
            let s = scratch.baseAddress!
            if columns <= nr / 2 {
                halfKernel(depth, panelA, aRow, aDepth, panelB, s, nr, add: false)
            } else {
                kernel(depth, panelA, aRow, aDepth, panelB, s, nr, add: false)
            }
            storeScratch(s, rows: 0..<rows, columns: columns, c, ldc, add: add)
        }
    }

    /// Writes (or with `add`, adds) rows `rows` of a scratch tile (row stride nr) into the first
    /// `columns` columns of C's same rows: the valid part of an edge tile.
    static func storeScratch(_ s: UnsafePointer<Float>, rows: Range<Int>, columns: Int,
                             _ c: UnsafeMutablePointer<Float>, _ ldc: Int, add: Bool) {
        for i in rows {
            let dst = c + i * ldc, src = s + i * nr
            if add { for j in 0..<columns { dst[j] += src[j] } } else { dst.update(from: src, count: columns) }
        }
    }

    /// C[i, j] (+)= A[i, 0..<depth] . BT[j, 0..<depth] for `rows` rows and `columns` (< 16)
    /// columns, A's rows and BT's rows contiguous: a narrow edge of C at full vector width
    /// (16 multiply-adds per FMA; the half kernel spends one FMA and one broadcast per 1-15 of
    /// them), four columns at a time sharing A's loads.
    /// Up to this many edge columns `rowDots` beats the half kernel (per row and 16 of depth:
    /// 9 loads, 8 FMAs and the final sums for 8 columns, against 16 broadcasts and 16 FMAs).
    static let maxDotColumns = 8

    static func rowDots(_ depth: Int, _ a: UnsafePointer<Float>, _ lda: Int, rows: Int,
                        _ bt: UnsafePointer<Float>, _ ldbt: Int, columns: Int,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, add: Bool) {
        let vectorDepth = depth / 16 * 16
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
        for i in 0..<rows {
            let ar = a + i * lda, cr = c + i * ldc
            var j = 0
            while j < columns {
                let group = min(4, columns - j)
                let b0 = bt + j * ldbt, b1 = bt + min(j + 1, columns - 1) * ldbt
                let b2 = bt + min(j + 2, columns - 1) * ldbt, b3 = bt + min(j + 3, columns - 1) * ldbt
                var s0 = Vector(), s1 = Vector(), s2 = Vector(), s3 = Vector()
                var p = 0
                while p < vectorDepth {
                    let x = load(ar + p)
                    s0.addProduct(x, load(b0 + p)); s1.addProduct(x, load(b1 + p))
                    s2.addProduct(x, load(b2 + p)); s3.addProduct(x, load(b3 + p))
                    p += 16
                }
                var sums = SIMD4(s0.sum(), s1.sum(), s2.sum(), s3.sum())
                for q in vectorDepth..<depth {
                    sums[0] += ar[q] * b0[q]; sums[1] += ar[q] * b1[q]; sums[2] += ar[q] * b2[q]; sums[3] += ar[q] * b3[q]
                }
                for g in 0..<group { cr[j + g] = add ? cr[j + g] + sums[g] : sums[g] }
                j += group
            }
        }
    }

    /// Up to this many tail columns `columnTail` beats the half kernel (per 32 rows and depth
    /// step, four columns take 2 loads, 4 broadcasts and 8 FMAs; the half kernel spends 32
    /// broadcasts and 32 FMAs on 1-16 columns).
    static let maxColumnTail = 12

    /// C[i, j] (+)= alpha sum_p A^T[p, i] BT[j, p] for `rows` rows of C and `columns` tail
    /// columns, with A^T (depth x rows, row stride lda) read in place: 32 rows of C at a time as
    /// two vectors of A^T's contiguous rows, against four columns at once, so every
    /// multiply-add lane is used (the half kernel used 1-12 of 16 on such a tail). The last
    /// rows (fewer than 16) go through a zero-padded copy.
    static func columnTail(_ depth: Int, _ at: UnsafePointer<Float>, _ lda: Int, rows: Int,
                           _ bt: UnsafePointer<Float>, _ ldbt: Int, columns: Int, alpha: Float,
                           _ c: UnsafeMutablePointer<Float>, _ ldc: Int, add: Bool) {
        var i = 0
        while i + 32 <= rows {
            columnTailRows(twoVectors: true, depth, at + i, lda, bt, ldbt, columns, alpha, c + i * ldc, ldc, add, rows: 32)
            i += 32
        }
        if i + 16 <= rows {
            columnTailRows(twoVectors: false, depth, at + i, lda, bt, ldbt, columns, alpha, c + i * ldc, ldc, add, rows: 16)
            i += 16
        }
        guard i < rows else { return }
        let left = rows - i
        withUnsafeTemporaryAllocation(of: Float.self, capacity: depth * 16) { padded in
            let buffer = padded.baseAddress!
            for p in 0..<depth {
                for q in 0..<16 { buffer[p * 16 + q] = q < left ? at[p * lda + i + q] : 0 }
            }
            columnTailRows(twoVectors: false, depth, buffer, 16, bt, ldbt, columns, alpha, c + i * ldc, ldc, add, rows: left)
        }
    }

    @inline(__always)
    static func columnTailRows(twoVectors: Bool, _ depth: Int, _ at: UnsafePointer<Float>, _ lda: Int,
                               _ bt: UnsafePointer<Float>, _ ldbt: Int, _ columns: Int, _ alpha: Float,
                               _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool, rows: Int) {
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> Vector { UnsafeRawPointer(p).loadUnaligned(as: Vector.self) }
        var j = 0
        while j < columns {
            let group = min(4, columns - j)
            // a group of fewer than 4 repeats its last column and drops the copies
            let b0 = bt + j * ldbt, b1 = bt + (j + min(1, group - 1)) * ldbt
            let b2 = bt + (j + min(2, group - 1)) * ldbt, b3 = bt + (j + min(3, group - 1)) * ldbt
            var s00 = Vector(), s01 = Vector(), s02 = Vector(), s03 = Vector()
            var s10 = Vector(), s11 = Vector(), s12 = Vector(), s13 = Vector()
            var row = at
            for p in 0..<depth {
                let v0 = Vector(repeating: b0[p]), v1 = Vector(repeating: b1[p])
                let v2 = Vector(repeating: b2[p]), v3 = Vector(repeating: b3[p])
                let x0 = load(row)
                s00.addProduct(x0, v0); s01.addProduct(x0, v1); s02.addProduct(x0, v2); s03.addProduct(x0, v3)
                if twoVectors {
                    let x1 = load(row + 16)
                    s10.addProduct(x1, v0); s11.addProduct(x1, v1); s12.addProduct(x1, v2); s13.addProduct(x1, v3)
                }
                row += lda
            }
            @inline(__always) func store(_ low: Vector, _ high: Vector, column g: Int) {
                guard g < group else { return }
                for q in 0..<rows {
                    let value = alpha * (q < 16 ? low[q] : high[q - 16]), dst = c + q * ldc + j + g
                    dst.pointee = add ? dst.pointee + value : value
                }
            }
            store(s00, s10, column: 0); store(s01, s11, column: 1); store(s02, s12, column: 2); store(s03, s13, column: 3)
            j += group
        }
    }

    /// Writes (or with `add`, adds) one row of a tile's accumulators: 32 columns...
    @inline(__always)
    static func storeRow(_ row: UnsafeMutablePointer<Float>, _ lo: Vector, _ hi: Vector, add: Bool) {
        let r = UnsafeMutableRawPointer(row)
        if add {
            r.storeBytes(of: r.loadUnaligned(as: Vector.self) + lo, as: Vector.self)
            r.storeBytes(of: r.loadUnaligned(fromByteOffset: 64, as: Vector.self) + hi, toByteOffset: 64, as: Vector.self)
        } else {
            r.storeBytes(of: lo, as: Vector.self)
            r.storeBytes(of: hi, toByteOffset: 64, as: Vector.self)
        }
    }

    /// ...or 16.
    @inline(__always)
    static func storeRow(_ row: UnsafeMutablePointer<Float>, _ v: Vector, add: Bool) {
        let r = UnsafeMutableRawPointer(row)
        r.storeBytes(of: add ? r.loadUnaligned(as: Vector.self) + v : v, as: Vector.self)
    }

    /// The first 16 columns of a tile: C (+)= A B[:, 0..<16].
    static func halfKernel(_ depth: Int, _ panelA: UnsafePointer<Float>, _ aRow: Int, _ aDepth: Int,
                           _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, add: Bool) {
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector(), c4 = Vector(), c5 = Vector()
        var c6 = Vector(), c7 = Vector(), c8 = Vector(), c9 = Vector(), ca = Vector(), cb = Vector()
        var pa = panelA, pb = UnsafeRawPointer(panelB)
        for _ in 0..<depth {
            let b0 = pb.loadUnaligned(as: Vector.self)
            c0.addProduct(Vector(repeating: pa[0]), b0); c1.addProduct(Vector(repeating: pa[aRow]), b0)
            c2.addProduct(Vector(repeating: pa[2 * aRow]), b0); c3.addProduct(Vector(repeating: pa[3 * aRow]), b0)
            c4.addProduct(Vector(repeating: pa[4 * aRow]), b0); c5.addProduct(Vector(repeating: pa[5 * aRow]), b0)
            c6.addProduct(Vector(repeating: pa[6 * aRow]), b0); c7.addProduct(Vector(repeating: pa[7 * aRow]), b0)
            c8.addProduct(Vector(repeating: pa[8 * aRow]), b0); c9.addProduct(Vector(repeating: pa[9 * aRow]), b0)
            ca.addProduct(Vector(repeating: pa[10 * aRow]), b0); cb.addProduct(Vector(repeating: pa[11 * aRow]), b0)
            pa += aDepth; pb += nr * MemoryLayout<Float>.stride
        }
        @inline(__always) func store(_ row: Int, _ v: Vector) { storeRow(c + row * ldc, v, add: add) }
        store(0, c0); store(1, c1); store(2, c2); store(3, c3); store(4, c4); store(5, c5)
        store(6, c6); store(7, c7); store(8, c8); store(9, c9); store(10, ca); store(11, cb)
    }

    /// One mr x nr tile: C (+)= A B, with A (mr x depth) at `panelA` (element [i, p] at
    /// i * aRow + p * aDepth: a packed panel or A in place) and B (depth x nr) the packed panel.
    @inline(__always)
    public static func kernel(_ depth: Int, _ panelA: UnsafePointer<Float>, _ aRow: Int, _ aDepth: Int,
                       _ panelB: UnsafePointer<Float>,
                       _ c: UnsafeMutablePointer<Float>, _ ldc: Int, add: Bool) {
        // Accumulators: row i of the tile is (ci0, ci1), columns 0-15 and 16-31.
        var c00 = Vector(), c01 = Vector(), c10 = Vector(), c11 = Vector(), c20 = Vector(), c21 = Vector()
        var c30 = Vector(), c31 = Vector(), c40 = Vector(), c41 = Vector(), c50 = Vector(), c51 = Vector()
        var c60 = Vector(), c61 = Vector(), c70 = Vector(), c71 = Vector(), c80 = Vector(), c81 = Vector()
        var c90 = Vector(), c91 = Vector(), ca0 = Vector(), ca1 = Vector(), cb0 = Vector(), cb1 = Vector()
        var pa = panelA, pb = UnsafeRawPointer(panelB)
        for _ in 0..<depth {
            let b0 = pb.loadUnaligned(as: Vector.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: Vector.self)
            var s = Vector(repeating: pa[0]); c00.addProduct(s, b0); c01.addProduct(s, b1)
            s = Vector(repeating: pa[1 * aRow]); c10.addProduct(s, b0); c11.addProduct(s, b1)
            s = Vector(repeating: pa[2 * aRow]); c20.addProduct(s, b0); c21.addProduct(s, b1)
            s = Vector(repeating: pa[3 * aRow]); c30.addProduct(s, b0); c31.addProduct(s, b1)
            s = Vector(repeating: pa[4 * aRow]); c40.addProduct(s, b0); c41.addProduct(s, b1)
            s = Vector(repeating: pa[5 * aRow]); c50.addProduct(s, b0); c51.addProduct(s, b1)
            s = Vector(repeating: pa[6 * aRow]); c60.addProduct(s, b0); c61.addProduct(s, b1)
            s = Vector(repeating: pa[7 * aRow]); c70.addProduct(s, b0); c71.addProduct(s, b1)
            s = Vector(repeating: pa[8 * aRow]); c80.addProduct(s, b0); c81.addProduct(s, b1)
            s = Vector(repeating: pa[9 * aRow]); c90.addProduct(s, b0); c91.addProduct(s, b1)
            s = Vector(repeating: pa[10 * aRow]); ca0.addProduct(s, b0); ca1.addProduct(s, b1)
            s = Vector(repeating: pa[11 * aRow]); cb0.addProduct(s, b0); cb1.addProduct(s, b1)
            pa += aDepth; pb += nr * MemoryLayout<Float>.stride
        }
        @inline(__always) func store(_ row: Int, _ lo: Vector, _ hi: Vector) { storeRow(c + row * ldc, lo, hi, add: add) }
        store(0, c00, c01); store(1, c10, c11); store(2, c20, c21); store(3, c30, c31)
        store(4, c40, c41); store(5, c50, c51); store(6, c60, c61); store(7, c70, c71)
        store(8, c80, c81); store(9, c90, c91); store(10, ca0, ca1); store(11, cb0, cb1)
    }

    /// C (12 x n) += A B over `depth` steps, A's column p (12 values) read at
    /// `depthPointers[p] + offset` and B packed (depth x n): the implicit weight gradient's tile,
    /// where depth steps are output positions and each points at its input run. Only the depth
    /// steps `live` are taken (the others point at zeros). The first `skipRows` rows of C are
    /// left as they were (an overlapping last tile).
    static func gatherTile(_ live: Range<Int>, _ depthPointers: UnsafePointer<UnsafePointer<Float>>, offset: Int, _ b: PackedB,
                           _ c: UnsafeMutablePointer<Float>, _ ldc: Int, skipRows: Int) {
        precondition(b.sliceDepth >= b.k, "gatherTile takes one depth slice")
        let panelB = UnsafePointer(b.slice(0)) + live.lowerBound * nr
        let depth = live.count, depthPointers = depthPointers + live.lowerBound
        for jp in 0..<b.panels {
            let j0 = jp * nr, columns = min(nr, b.n - j0), panel = panelB + jp * nr * b.k
            if skipRows == 0 && (columns == nr || columns == nr / 2) {
                if columns == nr { gatherWide(depth, depthPointers, offset, panel, c + j0, ldc) }
                else { gatherNarrow(depth, depthPointers, offset, panel, c + j0, ldc) }
                continue
            }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { scratch in
                let s = scratch.baseAddress!
                s.update(repeating: 0, count: mr * nr)
                if columns > nr / 2 { gatherWide(depth, depthPointers, offset, panel, s, nr) }
                else { gatherNarrow(depth, depthPointers, offset, panel, s, nr) }
                storeScratch(s, rows: skipRows..<mr, columns: columns, c + j0, ldc, add: true)
            }
        }
    }

    static func gatherWide(_ depth: Int, _ depthPointers: UnsafePointer<UnsafePointer<Float>>, _ offset: Int,
                           _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        var c00 = Vector(), c01 = Vector(), c10 = Vector(), c11 = Vector(), c20 = Vector(), c21 = Vector()
        var c30 = Vector(), c31 = Vector(), c40 = Vector(), c41 = Vector(), c50 = Vector(), c51 = Vector()
        var c60 = Vector(), c61 = Vector(), c70 = Vector(), c71 = Vector(), c80 = Vector(), c81 = Vector()
        var c90 = Vector(), c91 = Vector(), ca0 = Vector(), ca1 = Vector(), cb0 = Vector(), cb1 = Vector()
        var pb = UnsafeRawPointer(panelB)
        for p in 0..<depth {
            let pa = depthPointers[p] + offset
            let b0 = pb.loadUnaligned(as: Vector.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: Vector.self)
            var s = Vector(repeating: pa[0]); c00.addProduct(s, b0); c01.addProduct(s, b1)
            s = Vector(repeating: pa[1]); c10.addProduct(s, b0); c11.addProduct(s, b1)
            s = Vector(repeating: pa[2]); c20.addProduct(s, b0); c21.addProduct(s, b1)
            s = Vector(repeating: pa[3]); c30.addProduct(s, b0); c31.addProduct(s, b1)
            s = Vector(repeating: pa[4]); c40.addProduct(s, b0); c41.addProduct(s, b1)
            s = Vector(repeating: pa[5]); c50.addProduct(s, b0); c51.addProduct(s, b1)
            s = Vector(repeating: pa[6]); c60.addProduct(s, b0); c61.addProduct(s, b1)
            s = Vector(repeating: pa[7]); c70.addProduct(s, b0); c71.addProduct(s, b1)
            s = Vector(repeating: pa[8]); c80.addProduct(s, b0); c81.addProduct(s, b1)
            s = Vector(repeating: pa[9]); c90.addProduct(s, b0); c91.addProduct(s, b1)
            s = Vector(repeating: pa[10]); ca0.addProduct(s, b0); ca1.addProduct(s, b1)
            s = Vector(repeating: pa[11]); cb0.addProduct(s, b0); cb1.addProduct(s, b1)
            pb += nr * MemoryLayout<Float>.stride
        }
        @inline(__always) func add(_ row: Int, _ lo: Vector, _ hi: Vector) { storeRow(c + row * ldc, lo, hi, add: true) }
        add(0, c00, c01); add(1, c10, c11); add(2, c20, c21); add(3, c30, c31)
        add(4, c40, c41); add(5, c50, c51); add(6, c60, c61); add(7, c70, c71)
        add(8, c80, c81); add(9, c90, c91); add(10, ca0, ca1); add(11, cb0, cb1)
    }

    static func gatherNarrow(_ depth: Int, _ depthPointers: UnsafePointer<UnsafePointer<Float>>, _ offset: Int,
                             _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector(), c4 = Vector(), c5 = Vector()
        var c6 = Vector(), c7 = Vector(), c8 = Vector(), c9 = Vector(), ca = Vector(), cb = Vector()
        var pb = UnsafeRawPointer(panelB)
        for p in 0..<depth {
            let pa = depthPointers[p] + offset
            let b0 = pb.loadUnaligned(as: Vector.self)
            c0.addProduct(Vector(repeating: pa[0]), b0); c1.addProduct(Vector(repeating: pa[1]), b0)
            c2.addProduct(Vector(repeating: pa[2]), b0); c3.addProduct(Vector(repeating: pa[3]), b0)
            c4.addProduct(Vector(repeating: pa[4]), b0); c5.addProduct(Vector(repeating: pa[5]), b0)
            c6.addProduct(Vector(repeating: pa[6]), b0); c7.addProduct(Vector(repeating: pa[7]), b0)
            c8.addProduct(Vector(repeating: pa[8]), b0); c9.addProduct(Vector(repeating: pa[9]), b0)
            ca.addProduct(Vector(repeating: pa[10]), b0); cb.addProduct(Vector(repeating: pa[11]), b0)
            pb += nr * MemoryLayout<Float>.stride
        }
        @inline(__always) func add(_ row: Int, _ v: Vector) { storeRow(c + row * ldc, v, add: true) }
        add(0, c0); add(1, c1); add(2, c2); add(3, c3); add(4, c4); add(5, c5)
        add(6, c6); add(7, c7); add(8, c8); add(9, c9); add(10, ca); add(11, cb)
    }

    // Implicit GEMM: A's rows read through pointers, in segments. A conv's im2col row is, per
    // (temporal, vertical) kernel tap, one contiguous run of kW*C input values; a tile of
    // `indirectRows` output positions reads that many runs per tap, wherever they are (`implicitForward` in
    // Conv.swift), so no im2col row is ever written.

    /// C tile (rows x columns, at most indirectRows x nr) (+)= A B, where A's row i is the concatenation of
    /// `segments` runs of `run` values, run s of row i at `rowPointers[s * indirectRows + i]`, and B
    /// (segments * run deep) is a packed panel. Rows beyond `rows` must still point at `run`
    /// readable values; their results are dropped. A segment whose rows all point at `zeros`
    /// (a kernel row in the padding for the whole tile) is skipped: it would add only zeros.
    static func indirectTile(_ segments: Int, _ run: Int, _ rowPointers: UnsafePointer<UnsafePointer<Float>>,
                             zeros: UnsafePointer<Float>, _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                             rows: Int, columns: Int, add: Bool) {
        // Up to 16 columns need only the narrow kernel.
        let kernel = columns <= nr / 2 ? indirectNarrow : indirectWide
        if rows == indirectRows && (columns == nr || columns == nr / 2) {
            kernel(segments, run, rowPointers, zeros, panelB, c, ldc, add)
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: indirectRows * nr) { scratch in
            let s = scratch.baseAddress!
            kernel(segments, run, rowPointers, zeros, panelB, s, nr, false)
            storeScratch(s, rows: 0..<rows, columns: columns, c, ldc, add: add)
        }
    }

    /// The indirect microkernels, 8 x 32 and 8 x 16, the row pointers reloaded per segment.
    /// Rows of an indirect tile: 8, not `mr`, so that the row pointers stay in registers (with
    /// 12 the compiler reloaded all of them from the stack at every depth step).
    public static let indirectRows = 8

    /// Whether all `indirectRows` pointers of a segment point at `zeros`.
    @inline(__always)
    static func allZeros(_ r: UnsafePointer<UnsafePointer<Float>>, _ zeros: UnsafePointer<Float>) -> Bool {
        r[0] == zeros && r[1] == zeros && r[2] == zeros && r[3] == zeros
            && r[4] == zeros && r[5] == zeros && r[6] == zeros && r[7] == zeros
    }

    public static func indirectWide(_ segments: Int, _ run: Int, _ rowPointers: UnsafePointer<UnsafePointer<Float>>, _ zeros: UnsafePointer<Float>,
                             _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
        var c00 = Vector(), c01 = Vector(), c10 = Vector(), c11 = Vector(), c20 = Vector(), c21 = Vector()
        var c30 = Vector(), c31 = Vector(), c40 = Vector(), c41 = Vector(), c50 = Vector(), c51 = Vector()
        var c60 = Vector(), c61 = Vector(), c70 = Vector(), c71 = Vector()
        var pb = UnsafeRawPointer(panelB)
        for segment in 0..<segments {
            let r = rowPointers + segment * indirectRows
            if allZeros(r, zeros) { pb += run * nr * MemoryLayout<Float>.stride; continue }
            let a0 = r[0], a1 = r[1], a2 = r[2], a3 = r[3], a4 = r[4], a5 = r[5], a6 = r[6], a7 = r[7]
            for p in 0..<run {
                let b0 = pb.loadUnaligned(as: Vector.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: Vector.self)
                var s = Vector(repeating: a0[p]); c00.addProduct(s, b0); c01.addProduct(s, b1)
                s = Vector(repeating: a1[p]); c10.addProduct(s, b0); c11.addProduct(s, b1)
                s = Vector(repeating: a2[p]); c20.addProduct(s, b0); c21.addProduct(s, b1)
                s = Vector(repeating: a3[p]); c30.addProduct(s, b0); c31.addProduct(s, b1)
                s = Vector(repeating: a4[p]); c40.addProduct(s, b0); c41.addProduct(s, b1)
                s = Vector(repeating: a5[p]); c50.addProduct(s, b0); c51.addProduct(s, b1)
                s = Vector(repeating: a6[p]); c60.addProduct(s, b0); c61.addProduct(s, b1)
                s = Vector(repeating: a7[p]); c70.addProduct(s, b0); c71.addProduct(s, b1)
                pb += nr * MemoryLayout<Float>.stride
            }
        }
        @inline(__always) func store(_ row: Int, _ lo: Vector, _ hi: Vector) { storeRow(c + row * ldc, lo, hi, add: add) }
        store(0, c00, c01); store(1, c10, c11); store(2, c20, c21); store(3, c30, c31)
        store(4, c40, c41); store(5, c50, c51); store(6, c60, c61); store(7, c70, c71)
    }

    static func indirectNarrow(_ segments: Int, _ run: Int, _ rowPointers: UnsafePointer<UnsafePointer<Float>>, _ zeros: UnsafePointer<Float>,
                               _ panelB: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector(), c4 = Vector(), c5 = Vector(), c6 = Vector(), c7 = Vector()
        var pb = UnsafeRawPointer(panelB)
        for segment in 0..<segments {
            let r = rowPointers + segment * indirectRows
            if allZeros(r, zeros) { pb += run * nr * MemoryLayout<Float>.stride; continue }
            let a0 = r[0], a1 = r[1], a2 = r[2], a3 = r[3], a4 = r[4], a5 = r[5], a6 = r[6], a7 = r[7]
            for p in 0..<run {
                let b0 = pb.loadUnaligned(as: Vector.self)
                c0.addProduct(Vector(repeating: a0[p]), b0); c1.addProduct(Vector(repeating: a1[p]), b0)
                c2.addProduct(Vector(repeating: a2[p]), b0); c3.addProduct(Vector(repeating: a3[p]), b0)
                c4.addProduct(Vector(repeating: a4[p]), b0); c5.addProduct(Vector(repeating: a5[p]), b0)
                c6.addProduct(Vector(repeating: a6[p]), b0); c7.addProduct(Vector(repeating: a7[p]), b0)
                pb += nr * MemoryLayout<Float>.stride
            }
        }
        @inline(__always) func store(_ row: Int, _ v: Vector) { storeRow(c + row * ldc, v, add: add) }
        store(0, c0); store(1, c1); store(2, c2); store(3, c3); store(4, c4); store(5, c5); store(6, c6); store(7, c7)
    }
}
