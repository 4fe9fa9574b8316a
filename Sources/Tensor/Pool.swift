import Foundation

// Max pooling records, per output, the flat index of the input it took. Its backward scatters
// by those indices, and the scatter's backward gathers by them: a closed pair.

/// Max pool over (T, H, W) of channels-last x (N, T, H, W, C); padding counts as -infinity.
public func maxPool3d(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int] = [0, 0, 0]) -> Tensor {
    precondition(x.rank == 5, "maxPool3d needs (N, T, H, W, C), got \(x.shape)")
    let (n, t, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
    let ot = (t + 2 * padding[0] - kernel[0]) / stride[0] + 1
    let oh = (h + 2 * padding[1] - kernel[1]) / stride[1] + 1
    let ow = (w + 2 * padding[2] - kernel[2]) / stride[2] + 1
    let out = Tensor(uninitialized: [n, ot, oh, ow, c])
    var indices = [Int32](repeating: 0, count: out.count)
    let xp = x.data, yp = out.data
    indices.withUnsafeMutableBufferPointer { ib in
        let ip = ib.baseAddress!
        parallelFor(n * ot * oh * ow, minPerThread: 256) { s, e in
            for r in s..<e {
                var rem = r
                let b = rem / (ot * oh * ow); rem %= ot * oh * ow
                let i = rem / (oh * ow); rem %= oh * ow
                let j = rem / ow, l = rem % ow
                let yr = yp + r * c, irow = ip + r * c
                for q in 0..<c { yr[q] = -.infinity; irow[q] = -1 }
                for a in 0..<kernel[0] {
                    let ti = i * stride[0] - padding[0] + a
                    if ti < 0 || ti >= t { continue }
                    for bb in 0..<kernel[1] {
                        let hi = j * stride[1] - padding[1] + bb
                        if hi < 0 || hi >= h { continue }
                        for cc in 0..<kernel[2] {
                            let wi = l * stride[2] - padding[2] + cc
                            if wi < 0 || wi >= w { continue }
                            let base = (((b * t + ti) * h + hi) * w + wi) * c
                            for q in 0..<c where xp[base + q] > yr[q] || irow[q] < 0 {
                                yr[q] = xp[base + q]; irow[q] = Int32(base + q)
                            }
                        }
                    }
                }
            }
        }
    }
    let inShape = x.shape
    return record("max_pool3d", out, [x]) { g in [scatterAdd(g, indices: indices, into: inShape)] }
}

/// out (shape `target`, zeros) with out[indices[i]] += g[i].
func scatterAdd(_ g: Tensor, indices: [Int32], into target: [Int]) -> Tensor {
    let out = Tensor.zeros(target)
    let gp = g.data, op = out.data
    for i in 0..<g.count { op[Int(indices[i])] += gp[i] }
    let gShape = g.shape
    return record("scatter_add", out, [g]) { gg in [gather(gg, indices: indices, shape: gShape)] }
}

/// out[i] = x[indices[i]], shaped `shape`.
func gather(_ x: Tensor, indices: [Int32], shape: [Int]) -> Tensor {
    let out = Tensor(uninitialized: shape)
    let xp = x.data, op = out.data
    for i in 0..<out.count { op[i] = xp[Int(indices[i])] }
    let xShape = x.shape
    return record("gather", out, [x]) { g in [scatterAdd(g, indices: indices, into: xShape)] }
}

extension Tensor {
    /// Mean over (T, H, W) of (N, T, H, W, C) -> (N, C): AdaptiveAvgPool3d(1) then flatten.
    public func globalAveragePool() -> Tensor {
        precondition(rank == 5, "globalAveragePool needs (N, T, H, W, C), got \(shape)")
        return mean(axes: [1, 2, 3])
    }
}
