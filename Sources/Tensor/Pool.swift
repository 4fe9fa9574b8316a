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
    // The argmax per output element, for the backward; not kept when no gradient will be asked.
    let recording = GradMode.isEnabled && x.tracksGrad
    var indices = [Int32](repeating: 0, count: recording ? out.count : 0)
    let xp = x.data, yp = out.data
    let (kt, kh, kw) = (kernel[0], kernel[1], kernel[2]), (st, sh, sw) = (stride[0], stride[1], stride[2])
    let (pt, ph, pw) = (padding[0], padding[1], padding[2])
    indices.withUnsafeMutableBufferPointer { ib in
        let ip = recording ? ib.baseAddress : nil
        parallelFor(n * ot * oh * ow, minPerThread: 256) { s, e in
            var position = OutputPosition(row: s, outT: ot, outH: oh, outW: ow)
            for r in s..<e {
                let (b, i, j, l) = (position.n, position.ot, position.oh, position.ow)
                // Channels 16 at a time: the window's elements in order, the first maximum kept
                // (a strictly greater value replaces it), as the scalar loop did.
                var q0 = 0
                while q0 < c {
                    let width = min(16, c - q0)
                    var best = SIMD16<Float>(repeating: -.infinity), at = SIMD16<Int32>(repeating: -1)
                    for a in 0..<kt {
                        let ti = i &* st &- pt &+ a
                        if ti < 0 || ti >= t { continue }
                        for bb in 0..<kh {
                            let hi = j &* sh &- ph &+ bb
                            if hi < 0 || hi >= h { continue }
                            for cc in 0..<kw {
                                let wi = l &* sw &- pw &+ cc
                                if wi < 0 || wi >= w { continue }
                                let base = (((b &* t &+ ti) &* h &+ hi) &* w &+ wi) &* c &+ q0
                                var v = SIMD16<Float>(repeating: -.infinity)
                                for q in 0..<width { v[q] = xp[base &+ q] }
                                let take = (v .> best) .| (at .< 0)
                                best.replace(with: v, where: take)
                                at.replace(with: SIMD16<Int32>(repeating: Int32(base)) &+ SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), where: take)
                            }
                        }
                    }
                    let yr = yp + (r &* c &+ q0)
                    for q in 0..<width { yr[q] = best[q] }
                    if let ip { let irow = ip + (r &* c &+ q0); for q in 0..<width { irow[q] = at[q] } }
                    q0 &+= 16
                }
                position.advance(outT: ot, outH: oh, outW: ow)
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
