/// Our own single-threaded sgemm, the conv GEMMs' engine: OpenBLAS 0.3.21 reaches 270-410
/// GFLOP/s of the 540 on this machine's tall, narrow conv products, and a packed-panel GEMM
/// compiled for the build machine's SIMD width does better there.
///
/// The usual blocking (Goto/BLIS): C (m x n) is computed in tiles of `mr x nr`; the depth is cut
/// into slices of `kc`; for each slice, op(B) is copied ("packed") into panels of nr columns
/// stored depth-major, and rows of op(A) in blocks of `mc` into panels of mr rows, also
/// depth-major. The microkernel then reads both panels with unit stride and keeps the whole
/// tile in registers: 12 rows x 2 vectors of 16 = 24 accumulators, 2 loads of B and 12 broadcasts
/// of A per depth step for 24 FMAs. Each tile of C sums its depth in order, slice by slice.
public enum PackedGEMM {
    typealias Vector = SIMD16<Float>
    static let mr = 12, nr = 32
    /// A panel of kc x nr floats (32 KiB) stays in L1 while the A panels (12 KiB each) stream.
    static let kc = 256
    /// A block of mc x kc floats (96 KiB) stays in L2.
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
        let panelsB = (n + nr - 1) / nr
        // From the buffer pool: the same sizes come back every step.
        let packedBStorage = Storage(uninitialized: panelsB * nr * kc), packedAStorage = Storage(uninitialized: mc * kc)
        let packedB = packedBStorage.pointer, packedA = packedAStorage.pointer
        defer { withExtendedLifetime((packedBStorage, packedAStorage)) {} }
        for p0 in stride(from: 0, to: k, by: kc) {
            let depth = min(kc, k - p0)
            // The first slice writes C when beta is 0; every later one adds to it.
            let add = p0 > 0 || beta != 0
            packB(transB, b, ldb, depth: p0..<(p0 + depth), columns: n, into: packedB)
            for i0 in stride(from: 0, to: m, by: mc) {
                let rows = min(mc, m - i0)
                // Row-major A with alpha 1 is read in place (each tile row a unit-stride stream);
                // otherwise, and for a block's last partial tile, its rows are packed.
                let direct = !transA && alpha == 1
                if !direct || rows % mr != 0 {
                    packA(transA, a, lda, alpha, rows: i0..<(i0 + rows), depth: p0..<(p0 + depth), into: packedA)
                }
                for jp in 0..<panelsB {
                    let j0 = jp * nr, cols = min(nr, n - j0)
                    let panelB = packedB + jp * nr * depth
                    for ip in stride(from: 0, to: rows, by: mr) {
                        let tileRows = min(mr, rows - ip)
                        let tile = c + (i0 + ip) * ldc + j0
                        let (panelA, rowStride, depthStride) = direct && tileRows == mr
                            ? (a + (i0 + ip) * lda + p0, lda, 1) : (UnsafePointer(packedA) + ip * depth, 1, mr)
                        if tileRows == mr && cols == nr {
                            kernel(depth, panelA, rowStride, depthStride, panelB, tile, ldc, add: add)
                        } else {
                            edgeTile(depth, panelA, rowStride, depthStride, panelB, tile, ldc, rows: tileRows, columns: cols, add: add)
                        }
                    }
                }
            }
        }
    }

    /// op(A)[rows, depth] * alpha into panels of mr rows, each depth-major (depth x mr), the last
    /// panel padded with zero rows.
    static func packA(_ transA: Bool, _ a: UnsafePointer<Float>, _ lda: Int, _ alpha: Float,
                      rows: Range<Int>, depth: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        let kd = depth.count
        for (panel, r0) in stride(from: rows.lowerBound, to: rows.upperBound, by: mr).enumerated() {
            let out = dst + panel * mr * kd
            let valid = min(mr, rows.upperBound - r0)
            if transA {
                // op(A)[r, p] = a[p * lda + r]: each depth step reads mr contiguous values.
                for p in 0..<kd {
                    let src = a + (depth.lowerBound + p) * lda + r0, o = out + p * mr
                    for r in 0..<valid { o[r] = alpha * src[r] }
                    for r in valid..<mr { o[r] = 0 }
                }
            } else {
                // op(A)[r, p] = a[r * lda + p]: each row is contiguous over the depth.
                for r in 0..<valid {
                    let src = a + (r0 + r) * lda + depth.lowerBound
                    for p in 0..<kd { out[p * mr + r] = alpha * src[p] }
                }
                for r in valid..<mr { for p in 0..<kd { out[p * mr + r] = 0 } }
            }
        }
    }

    /// op(B)[depth, 0..<columns] into panels of nr columns, each depth-major (depth x nr), the
    /// last panel padded with zero columns.
    static func packB(_ transB: Bool, _ b: UnsafePointer<Float>, _ ldb: Int,
                      depth: Range<Int>, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        let kd = depth.count
        for (panel, j0) in stride(from: 0, to: columns, by: nr).enumerated() {
            let out = dst + panel * nr * kd
            let valid = min(nr, columns - j0)
            if transB {
                // op(B)[p, j] = b[j * ldb + p]: each column is contiguous over the depth.
                for j in 0..<valid {
                    let src = b + (j0 + j) * ldb + depth.lowerBound
                    for p in 0..<kd { out[p * nr + j] = src[p] }
                }
                for j in valid..<nr { for p in 0..<kd { out[p * nr + j] = 0 } }
            } else {
                // op(B)[p, j] = b[p * ldb + j]: each depth step is a contiguous run of columns.
                for p in 0..<kd {
                    let src = b + (depth.lowerBound + p) * ldb + j0, o = out + p * nr
                    o.update(from: src, count: valid)
                    (o + valid).update(repeating: 0, count: nr - valid)
                }
            }
        }
    }

    /// A tile at C's bottom or right edge: the full kernel into a scratch tile, then the valid part.
    static func edgeTile(_ depth: Int, _ panelA: UnsafePointer<Float>, _ rowStride: Int, _ depthStride: Int,
                         _ panelB: UnsafePointer<Float>,
                         _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, columns: Int, add: Bool) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * nr) { scratch in
            let s = scratch.baseAddress!
            kernel(depth, panelA, rowStride, depthStride, panelB, s, nr, add: false)
            for i in 0..<rows {
                let dst = c + i * ldc, src = s + i * nr
                if add { for j in 0..<columns { dst[j] += src[j] } } else { dst.update(from: src, count: columns) }
            }
        }
    }

    /// One mr x nr tile: C (+)= A B, with A (mr x depth) at `panelA` (element [i, p] at
    /// i * rowStride + p * depthStride: a packed panel or rows of A in place) and B the packed
    /// panel (depth x nr).
    @inline(__always)
    static func kernel(_ depth: Int, _ panelA: UnsafePointer<Float>, _ rowStride: Int, _ depthStride: Int,
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
            s = Vector(repeating: pa[1 * rowStride]); c10.addProduct(s, b0); c11.addProduct(s, b1)
            s = Vector(repeating: pa[2 * rowStride]); c20.addProduct(s, b0); c21.addProduct(s, b1)
            s = Vector(repeating: pa[3 * rowStride]); c30.addProduct(s, b0); c31.addProduct(s, b1)
            s = Vector(repeating: pa[4 * rowStride]); c40.addProduct(s, b0); c41.addProduct(s, b1)
            s = Vector(repeating: pa[5 * rowStride]); c50.addProduct(s, b0); c51.addProduct(s, b1)
            s = Vector(repeating: pa[6 * rowStride]); c60.addProduct(s, b0); c61.addProduct(s, b1)
            s = Vector(repeating: pa[7 * rowStride]); c70.addProduct(s, b0); c71.addProduct(s, b1)
            s = Vector(repeating: pa[8 * rowStride]); c80.addProduct(s, b0); c81.addProduct(s, b1)
            s = Vector(repeating: pa[9 * rowStride]); c90.addProduct(s, b0); c91.addProduct(s, b1)
            s = Vector(repeating: pa[10 * rowStride]); ca0.addProduct(s, b0); ca1.addProduct(s, b1)
            s = Vector(repeating: pa[11 * rowStride]); cb0.addProduct(s, b0); cb1.addProduct(s, b1)
            pa += depthStride; pb += nr * MemoryLayout<Float>.stride
        }
        @inline(__always) func store(_ row: Int, _ lo: Vector, _ hi: Vector) {
            let r = UnsafeMutableRawPointer(c + row * ldc)
            if add {
                r.storeBytes(of: r.loadUnaligned(as: Vector.self) + lo, as: Vector.self)
                r.storeBytes(of: r.loadUnaligned(fromByteOffset: 64, as: Vector.self) + hi, toByteOffset: 64, as: Vector.self)
            } else {
                r.storeBytes(of: lo, as: Vector.self)
                r.storeBytes(of: hi, toByteOffset: 64, as: Vector.self)
            }
        }
        store(0, c00, c01); store(1, c10, c11); store(2, c20, c21); store(3, c30, c31)
        store(4, c40, c41); store(5, c50, c51); store(6, c60, c61); store(7, c70, c71)
        store(8, c80, c81); store(9, c90, c91); store(10, ca0, ca1); store(11, cb0, cb1)
    }
}
