import Foundation

// Max pooling records, per output, the flat index of the input it took. Its backward scatters
// by those indices, and the scatter's backward gathers by them: a closed pair.

/// Max pool over (T, H, W) of channels-last x (N, T, H, W, C); padding counts as -infinity.
public func maxPool3d(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int] = [0, 0, 0]) -> Tensor {
    precondition(x.rank == 5, "maxPool3d needs (N, T, H, W, C), got \(x.shape)")
    // As PyTorch requires: every window then holds an input element, so every output has one to point at.
    precondition((0..<3).allSatisfy { 2 * padding[$0] <= kernel[$0] }, "maxPool3d: padding \(padding) must be at most half the kernel \(kernel)")
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
            // The window's elements inside the input, in order: their offsets (of channel 0).
            withUnsafeTemporaryAllocation(of: Int.self, capacity: kt * kh * kw) { table in
                let window = table.baseAddress!
                var position = OutputPosition(row: s, outT: ot, outH: oh, outW: ow)
                for r in s..<e {
                    let (b, i, j, l) = (position.n, position.ot, position.oh, position.ow)
                    var count = 0
                    for a in 0..<kt {
                        let ti = i &* st &- pt &+ a
                        if ti < 0 || ti >= t { continue }
                        for bb in 0..<kh {
                            let hi = j &* sh &- ph &+ bb
                            if hi < 0 || hi >= h { continue }
                            for cc in 0..<kw {
                                let wi = l &* sw &- pw &+ cc
                                if wi < 0 || wi >= w { continue }
                                window[count] = (((b &* t &+ ti) &* h &+ hi) &* w &+ wi) &* c
                                count &+= 1
                            }
                        }
                    }
                    // Channels 8 at a time, then one by one.
                    var q0 = 0
                    while q0 < c {
                        let (y, index) = (yp + (r &* c &+ q0), ip.map { $0 + (r &* c &+ q0) })
                        if c &- q0 >= 8 {
                            maxOverWindow(xp + q0, window, count, q0, y, index)
                            q0 &+= 8
                            continue
                        }
                        var best = -Float.infinity, at: Int32 = -1
                        for e in 0..<count where xp[window[e] &+ q0] > best || at < 0 { best = xp[window[e] &+ q0]; at = Int32(window[e] &+ q0) }
                        y.pointee = best
                        index?.pointee = at
                        q0 &+= 1
                    }
                    position.advance(outT: ot, outH: oh, outW: ow)
                }
            }
        }
    }
    let inShape = x.shape
    return record("max_pool3d", out, [x]) { g in [scatterAdd(g, indices: indices, into: inShape)] }
}

/// The maxima over a window of 8 channels, x at channel q0 and the window's elements at
/// x + offsets[0..<count]: the first maximum kept (a strictly greater value replaces it), as a
/// scalar loop over the window would; its flat index (offset + q0 + lane) into `index`.
/// (8 wide on every CPU: written generic over the vector width, the comparisons compile to a
/// loop over the lanes.)
@inline(__always)
func maxOverWindow(_ x: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>, _ count: Int,
                   _ q0: Int, _ y: UnsafeMutablePointer<Float>, _ index: UnsafeMutablePointer<Int32>?) {
    var best = SIMD8<Float>(repeating: -.infinity), at = SIMD8<Int32>(repeating: -1)
    let lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) &+ SIMD8<Int32>(repeating: Int32(q0))
    for e in 0..<count {
        let v = UnsafeRawPointer(x + offsets[e]).loadUnaligned(as: SIMD8<Float>.self)
        let take = (v .> best) .| (at .< SIMD8<Int32>(repeating: 0))
        best.replace(with: v, where: take)
        at.replace(with: SIMD8<Int32>(repeating: Int32(offsets[e])) &+ lane, where: take)
    }
    UnsafeMutableRawPointer(y).storeBytes(of: best, as: SIMD8<Float>.self)
    if let index { UnsafeMutableRawPointer(index).storeBytes(of: at, as: SIMD8<Int32>.self) }
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
