import Foundation

/// Per-channel sums over the rows of x viewed as (M, C): (sum x, sum (x - center)^2 when
/// `center` given). Accumulates in Double per chunk so long rows stay accurate.
private func channelSums(_ x: UnsafePointer<Float>, rows m: Int, channels c: Int,
                         _ perRow: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Double] {
    let chunks = chunkCount(m, minPerThread: max(1, 16_384 / c))
    var partial = [Double](repeating: 0, count: chunks * c)
    partial.withUnsafeMutableBufferPointer { part in
        let pp = part.baseAddress!
        parallelChunks(m, minPerThread: max(1, 16_384 / c)) { chunk, s, e in
            let block = UnsafeMutablePointer<Float>.allocate(capacity: c)
            defer { block.deallocate() }
            var r = s
            while r < e {
                let end = min(e, r + 256)
                block.update(repeating: 0, count: c)
                for row in r..<end { perRow(x + row * c, block) }
                for j in 0..<c { pp[chunk * c + j] += Double(block[j]) }
                r = end
            }
        }
    }
    var total = [Double](repeating: 0, count: c)
    for i in 0..<chunks { for j in 0..<c { total[j] += partial[i * c + j] } }
    return total
}

/// The composite (differentiable to any order) form of training-mode batch norm over all axes
/// but the last: the formula the fused kernels below implement.
func batchNormComposite(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor, eps: Float) -> Tensor {
    let axes = Array(0..<(x.rank - 1))
    let centered = x - x.mean(axes: axes, keepDims: true)
    let variance = (centered * centered).mean(axes: axes, keepDims: true)
    return centered / (variance + eps).sqrt() * gamma + beta
}

/// Batch normalisation over every axis but the last (channels-last), like BatchNorm3d.
/// Training: batch statistics, running stats updated in place with `momentum` (PyTorch's
/// convention, unbiased running variance). Eval: running statistics, an affine map.
/// With `relu`, returns relu(batchNorm(x)) from the same pass, forward and backward (the mask
/// is read from the output; no intermediate tensor).
public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false) -> Tensor {
    let c = x.shape[x.rank - 1], m = x.count / c
    precondition(gamma.count == c && beta.count == c, "batch norm: \(c) channels, gamma \(gamma.shape), beta \(beta.shape)")
    if !training {
        // y = x * (gamma / sqrt(rv + eps)) + (beta - rm * gamma / sqrt(rv + eps))
        let invStd = runningVar.constantMap { 1 / ($0 + eps).squareRoot() }
        let scale = gamma * invStd
        let y = x * scale + (beta - runningMean * scale)
        return relu ? y.relu() : y
    }
    precondition(m > 1, "batch norm in training needs more than one value per channel, got shape \(x.shape)")
    let mean = channelSums(x.data, rows: m, channels: c) { row, acc in for j in 0..<c { acc[j] += row[j] } }.map { $0 / Double(m) }
    let meanF = mean.map { Float($0) }
    let sq = meanF.withUnsafeBufferPointer { mu in
        channelSums(x.data, rows: m, channels: c) { row, acc in
            for j in 0..<c { let d = row[j] - mu[j]; acc[j] += d * d }
        }
    }
    let variance = sq.map { $0 / Double(m) }
    let invStd = variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) }
    // running stats, in place
    for j in 0..<c {
        runningMean.data[j] = (1 - momentum) * runningMean.data[j] + momentum * meanF[j]
        runningVar.data[j] = (1 - momentum) * runningVar.data[j] + momentum * Float(variance[j] * Double(m) / Double(m - 1))
    }
    let scale = (0..<c).map { gamma.data[$0] * invStd[$0] }
    let shift = (0..<c).map { beta.data[$0] - meanF[$0] * scale[$0] }
    let y = Tensor(uninitialized: x.shape)
    let xp = x.data, yp = y.data
    scale.withUnsafeBufferPointer { sc in
        shift.withUnsafeBufferPointer { sh in
            parallelFor(m, minPerThread: max(1, 32_768 / c)) { s, e in
                for r in s..<e {
                    let xr = xp + r * c, yr = yp + r * c
                    if relu {
                        for j in 0..<c { yr[j] = Swift.max(xr[j] * sc[j] + sh[j], 0) }
                    } else {
                        for j in 0..<c { yr[j] = xr[j] * sc[j] + sh[j] }
                    }
                }
            }
        }
    }
    // An alias without history (no reference cycle through the closure): the ReLU's mask.
    let output = y.detached()
    return record(relu ? "batch_norm_relu" : "batch_norm", y, [x, gamma, beta]) { g in
        if GradMode.isEnabled {
            // A graph is being created: differentiate the composite formula instead.
            return vjpByRecompute([x, gamma, beta], g) {
                let z = batchNormComposite($0[0], $0[1], $0[2], eps: eps)
                return relu ? z.relu() : z
            }
        }
        let mask: UnsafePointer<Float>? = relu ? UnsafePointer(output.data) : nil
        // Fused: gx = gamma*invstd * (g - mean(g) - xhat * mean(g*xhat)); dgamma = sum(g*xhat); dbeta = sum(g)
        let gp = g.data
        let sums = meanF.withUnsafeBufferPointer { mu in
            invStd.withUnsafeBufferPointer { inv in
                channelSums2(xp, gp, mask, rows: m, channels: c, mu.baseAddress!, inv.baseAddress!)
            }
        }
        let (sumG, sumGXhat) = sums
        var gx: Tensor? = nil
        if x.tracksGrad {
            let out = Tensor(uninitialized: x.shape)
            let op = out.data
            let b = (0..<c).map { Float(sumG[$0] / Double(m)) }
            let d = (0..<c).map { Float(sumGXhat[$0] / Double(m)) }
            scale.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in d.withUnsafeBufferPointer { dp in
                meanF.withUnsafeBufferPointer { mu in invStd.withUnsafeBufferPointer { inv in
                    parallelFor(m, minPerThread: max(1, 32_768 / c)) { s, e in
                        for r in s..<e {
                            let xr = xp + r * c, gr = gp + r * c, orow = op + r * c
                            let yr = mask.map { $0 + r * c }
                            for j in 0..<c {
                                let xhat = (xr[j] - mu[j]) * inv[j]
                                let gj = yr.map { $0[j] > 0 ? gr[j] : 0 } ?? gr[j]
                                orow[j] = ap[j] * (gj - bp[j] - xhat * dp[j])
                            }
                        }
                    }
                }}
            }}}
            gx = out
        }
        let gGamma = gamma.tracksGrad ? Tensor(shape: gamma.shape, data: sumGXhat.map { Float($0) }) : nil
        let gBeta = beta.tracksGrad ? Tensor(shape: beta.shape, data: sumG.map { Float($0) }) : nil
        return [gx, gGamma, gBeta]
    }
}

/// Per-channel (sum g, sum g * xhat) for the fused batch-norm backward; with `mask` (the fused
/// ReLU's output), g counts only where the mask is positive.
private func channelSums2(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?, rows m: Int, channels c: Int,
                          _ mu: UnsafePointer<Float>, _ inv: UnsafePointer<Float>) -> ([Double], [Double]) {
    let chunks = chunkCount(m, minPerThread: max(1, 16_384 / c))
    var partial = [Double](repeating: 0, count: chunks * 2 * c)
    partial.withUnsafeMutableBufferPointer { part in
        let pp = part.baseAddress!
        parallelChunks(m, minPerThread: max(1, 16_384 / c)) { chunk, s, e in
            let block = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
            defer { block.deallocate() }
            var r = s
            while r < e {
                let end = min(e, r + 256)
                block.update(repeating: 0, count: 2 * c)
                for row in r..<end {
                    let xr = x + row * c, gr = g + row * c
                    if let mask {
                        let yr = mask + row * c
                        for j in 0..<c {
                            let gj = yr[j] > 0 ? gr[j] : 0
                            block[j] += gj
                            block[c + j] += gj * (xr[j] - mu[j]) * inv[j]
                        }
                    } else {
                        for j in 0..<c {
                            block[j] += gr[j]
                            block[c + j] += gr[j] * (xr[j] - mu[j]) * inv[j]
                        }
                    }
                }
                for j in 0..<(2 * c) { pp[chunk * 2 * c + j] += Double(block[j]) }
                r = end
            }
        }
    }
    var sumG = [Double](repeating: 0, count: c), sumGX = [Double](repeating: 0, count: c)
    for i in 0..<chunks {
        for j in 0..<c { sumG[j] += partial[i * 2 * c + j]; sumGX[j] += partial[i * 2 * c + c + j] }
    }
    return (sumG, sumGX)
}
