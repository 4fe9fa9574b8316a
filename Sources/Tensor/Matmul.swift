import CBLAS
import Dispatch
import Foundation

/// C = op(A) op(B) for 2-D tensors, with op = transpose when the flag is set; one cblas_sgemm.
/// The backward is the same op with other flags, so it is differentiable to any order.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
    let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
    let kb = transposeB ? b.shape[1] : b.shape[0], n = transposeB ? b.shape[0] : b.shape[1]
    precondition(k == kb, "matmul inner sizes differ: \(a.shape)\(transposeA ? "^T" : "") x \(b.shape)\(transposeB ? "^T" : "")")
    let out = Tensor(uninitialized: [m, n])
    sgemm(transposeA, transposeB, m, n, k, 1, a.data, a.shape[1], b.data, b.shape[1], 0, out.data, n)
    return record("matmul", out, [a, b]) { g in
        // d op(A) = g op(B)^T ; d op(B) = op(A)^T g, each mapped back through its transpose.
        let ga: Tensor? = a.tracksGrad
            ? (transposeA ? matmul(b, g, transposeA: transposeB, transposeB: true) : matmul(g, b, transposeB: !transposeB))
            : nil
        let gb: Tensor? = b.tracksGrad
            ? (transposeB ? matmul(g, a, transposeA: true, transposeB: transposeA) : matmul(a, g, transposeA: !transposeA))
            : nil
        return [ga, gb]
    }
}

/// Row-major sgemm: C(m x n) = alpha op(A) op(B) + beta C, with leading dimensions as stored.
/// OpenBLAS runs single-threaded (see `Engine`); a large product is split into blocks of C's
/// rows (or columns, when C is wide), one or two per thread of ours, each a single-threaded
/// sgemm that the threads claim (`parallelClaims`: a thread slowed down leaves its second block
/// to the other), so one pool of threads does all the work and no OpenBLAS thread spins while
/// our loops run. Each element of C is computed by one call whichever thread makes it.
public func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                  _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                  _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    let splitRows = m >= n
    let extent = splitRows ? m : n
    let work: Double = Double(m) * Double(n) * Double(k)
    // Two blocks per thread for large products where each keeps at least 32 rows or columns,
    // else one (on the quickstart's small products the second block's packing cost more than
    // the balance it bought).
    let parts = Engine.threads * (work >= 67_108_864 && extent >= 64 * Engine.threads ? 2 : 1)
    guard Engine.threads > 1, work >= 2_097_152 else {
        singleThreadSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    guard extent >= 32 * Engine.threads else {
        // Neither rows nor columns to share (a narrow conv's weight gradient: 16 x 36 summed over
        // every output position): the depth is shared instead.
        if k >= 1024 * Engine.threads { sgemmSplittingDepth(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) }
        else { singleThreadSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) }
        return
    }
    // Blocks of a multiple of 16 rows or columns, so each part starts on a SIMD boundary; the
    // parts' ceiling share, so `parts` blocks always cover `extent`.
    let step = ((extent + parts - 1) / parts + 15) / 16 * 16
    // On the engine's worker threads; inline when already inside a region.
    parallelClaims(parts, grain: 1) { claims in
        for claimed in claims {
            let start = claimed.lowerBound * step, end = min(extent, start + step)
            guard start < end else { continue }
            if splitRows {
                singleThreadSgemm(transA, transB, end - start, n, k, alpha, transA ? a + start : a + start * lda, lda, b, ldb,
                                  beta, c + start * ldc, ldc)
            } else {
                singleThreadSgemm(transA, transB, m, end - start, k, alpha, a, lda, transB ? b + start * ldb : b + start, ldb,
                                  beta, c + start, ldc)
            }
        }
    }
}

/// C = alpha op(A) op(B) + beta C with the depth cut into one slice per thread: the first slice
/// into C (with beta), each other into a partial of its own, then the partials added into C in
/// slice order, so the sums do not depend on which thread finishes first.
func sgemmSplittingDepth(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                         _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                         _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    let parts = Engine.threads, step = ((k + parts - 1) / parts + 15) / 16 * 16
    let partials = Storage(uninitialized: (parts - 1) * m * n)
    parallelClaims(parts, grain: 1) { claims in
        for part in claims.joined() {
            let start = part * step, depth = min(k, start + step) - start
            let aSlice = transA ? a + start * lda : a + start, bSlice = transB ? b + start : b + start * ldb
            if part == 0 {
                singleThreadSgemm(transA, transB, m, n, max(0, depth), alpha, aSlice, lda, bSlice, ldb, beta, c, ldc)
            } else if depth > 0 {
                singleThreadSgemm(transA, transB, m, n, depth, alpha, aSlice, lda, bSlice, ldb, 0, partials.pointer + (part - 1) * m * n, n)
            } else {
                (partials.pointer + (part - 1) * m * n).update(repeating: 0, count: m * n)
            }
        }
    }
    for part in 1..<parts {
        let partial = partials.pointer + (part - 1) * m * n
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] += partial[i * n + j] } }
    }
}

/// One single-threaded OpenBLAS sgemm, row-major.
@inline(__always)
func singleThreadSgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                   _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y = x W^T + b with PyTorch's layout: x (N, in), W (out, in), b (out).
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let y = matmul(x, weight, transposeB: true)
    guard let bias else { return y }
    return y + bias
}
