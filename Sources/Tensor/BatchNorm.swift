import Foundation

/// Two per-channel sums over the rows of (M, C) data: `accumulate(row, first, second)` adds row
/// `row` into two Float accumulators of C values. Partial sums move to Double every `flushRows`
/// rows and across threads, so long reductions stay accurate while the inner loops stay Float
/// (SIMD).
private func channelSumPairs(rows m: Int, channels c: Int, flushRows: Int,
                             _ accumulate: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> ([Double], [Double]) {
    // Grains of rows claimed by the threads, one Double partial per grain, summed in order.
    let minRows = max(1, 16_384 / c)
    let grain = chunkCount(m, minPerThread: minRows) > 1 ? claimGrain(m, minGrain: flushRows) : m
    let chunks = (m + grain - 1) / grain
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: chunks * 2 * c)
    defer { partial.deallocate() }
    partial.update(repeating: 0, count: chunks * 2 * c)
    parallelClaims(m, grain: grain) { claims in
        let block = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { block.deallocate() }
        for claimed in claims {
            let out = partial + claimed.lowerBound / grain * 2 * c
            var r = claimed.lowerBound
            while r < claimed.upperBound {
                let end = min(claimed.upperBound, r + flushRows)
                block.update(repeating: 0, count: 2 * c)
                for row in r..<end { accumulate(row, block, block + c) }
                for j in 0..<(2 * c) { out[j] += Double(block[j]) }
                r = end
            }
        }
    }
    var first = [Double](repeating: 0, count: c), second = [Double](repeating: 0, count: c)
    for i in 0..<chunks {
        for j in 0..<c { first[j] += partial[i * 2 * c + j]; second[j] += partial[i * 2 * c + c + j] }
    }
    return (first, second)
}

/// y = x * scale + shift (then ReLU) for `rows` rows of `width` values, scale and shift per
/// column: batch norm's normalising pass, on the engine's threads. Written with vectors: as a
/// plain loop in this function the compiler left it scalar (seen in the disassembly).
private func applyAffine(_ x: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
                         rows: Int, width: Int, relu: Bool, into y: UnsafeMutablePointer<Float>) {
    typealias V = SIMD16<Float>
    let vectorWidth = width / 16 * 16
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    parallelFor(rows, minPerThread: max(1, 32_768 / width)) { s, e in
        for r in s..<e {
            let xr = x + r * width, yr = y + r * width
            var j = 0
            while j < vectorWidth {
                var v = load(xr + j) * load(scale + j) + load(shift + j)
                if relu { v = pointwiseMax(v, V()) }
                UnsafeMutableRawPointer(yr + j).storeBytes(of: v, as: V.self)
                j += 16
            }
            for j in vectorWidth..<width {
                let v = xr[j] * scale[j] + shift[j]
                yr[j] = relu ? Swift.max(v, 0) : v
            }
        }
    }
}

/// The composite (differentiable to any order) form of training-mode batch norm over all axes
/// but the last: the formula the fused kernels below implement.
func batchNormComposite(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor, eps: Float) -> Tensor {
    let axes = Array(0..<(x.rank - 1))
    let centered = x - x.mean(axes: axes, keepDims: true)
    let variance = (centered * centered).mean(axes: axes, keepDims: true)
    return centered / (variance + eps).sqrt() * gamma + beta
}

/// Synchronised batch norm: inside `with(_:_:)`, training-mode batch norm takes its statistics
/// over the rows of every process of the collective (and its backward sums likewise), as
/// PyTorch's SyncBatchNorm. Every process must run the same layers in the same order.
public enum SynchronizedBatchNorm {
    nonisolated(unsafe) static var collective: Collective?

    public static func with<T>(_ collective: Collective, _ body: () throws -> T) rethrows -> T {
        let outer = Self.collective
        Self.collective = collective.size > 1 ? collective : nil
        defer { Self.collective = outer }
        return try body()
    }

    /// Sums `values` over the processes.
    static func sum(_ values: [Double], _ collective: Collective) -> [Double] {
        var buffer = values
        buffer.withUnsafeMutableBufferPointer { collective.sumInPlace($0.baseAddress!, count: $0.count) }
        return buffer
    }
}

/// Batch normalisation over every axis but the last (channels-last), like BatchNorm3d.
/// Training: batch statistics, running stats updated in place with `momentum` (PyTorch's
/// convention, unbiased running variance). Eval: running statistics, an affine map.
/// With `relu`, returns relu(batchNorm(x)) from the same pass, forward and backward (the mask
/// is recomputed from x; no intermediate tensor).
public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false) -> Tensor {
    let c = x.shape[x.rank - 1], m = x.count / c
    precondition(gamma.count == c && beta.count == c, "batch norm: \(c) channels, gamma \(gamma.shape), beta \(beta.shape)")
    if !training {
        // y = x * (gamma / sqrt(rv + eps)) + (beta - rm * gamma / sqrt(rv + eps))
        let invStd = runningVar.constantMap { 1 / ($0 + eps).squareRoot() }
        let scale = gamma * invStd, shift = beta - runningMean * scale
        guard GradMode.isEnabled && (x.tracksGrad || gamma.tracksGrad || beta.tracksGrad) else {
            // Nothing to differentiate (evaluation, feature extraction): one pass over x instead
            // of a multiply, an add and a ReLU each reading and writing the whole activation.
            let y = Tensor(uninitialized: x.shape)
            applyAffine(x.data, scale.data, shift.data, rows: m, width: c, relu: relu, into: y.data)
            return y
        }
        let y = x * scale + shift
        return relu ? y.relu() : y
    }
    precondition(m > 1, "batch norm in training needs more than one value per channel, got shape \(x.shape)")
    // Narrow layers (8-16 channels) make short inner loops, and channel counts off a multiple
    // of 16 (R(2+1)D's 36, 57, 115, 230) leave scalar tails: view (M, C) as (M / k, k C) rows of
    // at least 64 values and, where it can, a multiple of 16 (k a power of two dividing M, at
    // most 16), per-channel vectors repeated k times, and fold the k groups of every sum at the end.
    var k = 1
    while (c * k < 64 || (c * k) % 16 != 0) && k < 16 && m % (k * 2) == 0 { k *= 2 }
    let wc = c * k, wm = m / k
    // Float partial sums over at most 256 of the original rows each, whatever the widening
    // (16 original rows to a widened one would otherwise make 4096).
    let flushRows = max(1, 256 / k)
    func repeated(_ v: [Float]) -> [Float] { Array([[Float]](repeating: v, count: k).joined()) }
    func folded(_ v: [Double]) -> [Double] { (0..<c).map { j in (0..<k).reduce(0) { $0 + v[$1 * c + j] } } }
    // One pass: sums of (x - x[0]) and its square per channel. Shifting by the first row keeps
    // the variance's cancellation small when the mean is large against the spread.
    let xp = x.data
    let firstRow = repeated(Array(UnsafeBufferPointer(start: xp, count: c)))
    let (wide1, wide2) = firstRow.withUnsafeBufferPointer { k0 in
        let k0 = k0.baseAddress!
        return channelSumPairs(rows: wm, channels: wc, flushRows: flushRows) { r, a, b in
            let xr = xp + r * wc
            for j in 0..<wc { let d = xr[j] - k0[j]; a[j] += d; b[j] += d * d }
        }
    }
    let s1 = folded(wide1), s2 = folded(wide2)
    let meanShift = s1.map { $0 / Double(m) }
    var mean = (0..<c).map { Double(xp[$0]) + meanShift[$0] }
    var variance = (0..<c).map { max(0, s2[$0] / Double(m) - meanShift[$0] * meanShift[$0]) }
    // synchronised: the statistics of every process's rows, from each one's count, mean and
    // centred sum of squares (Chan's combination)
    let sync = SynchronizedBatchNorm.collective
    var rows = Double(m)
    if let sync {
        let counts = SynchronizedBatchNorm.sum([Double(m)] + mean.map { $0 * Double(m) }, sync)
        rows = counts[0]
        let global = (0..<c).map { counts[1 + $0] / rows }
        let squares = SynchronizedBatchNorm.sum((0..<c).map { variance[$0] * Double(m) + Double(m) * (mean[$0] - global[$0]) * (mean[$0] - global[$0]) }, sync)
        mean = global
        variance = squares.map { max(0, $0 / rows) }
    }
    let meanF = mean.map { Float($0) }
    let invStd = variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) }
    // running stats, in place
    for j in 0..<c {
        runningMean.data[j] = (1 - momentum) * runningMean.data[j] + momentum * meanF[j]
        runningVar.data[j] = (1 - momentum) * runningVar.data[j] + momentum * Float(variance[j] * rows / (rows - 1))
    }
    let scale = (0..<c).map { gamma.data[$0] * invStd[$0] }
    let shift = (0..<c).map { beta.data[$0] - meanF[$0] * scale[$0] }
    // Per-channel affine map repeated across the k channel groups of a widened row; the
    // backward reuses it for the fused ReLU's mask.
    let wideScale = repeated(scale), wideShift = repeated(shift)
    let y = Tensor(uninitialized: x.shape)
    wideScale.withUnsafeBufferPointer { sc in
        wideShift.withUnsafeBufferPointer { sh in
            applyAffine(xp, sc.baseAddress!, sh.baseAddress!, rows: wm, width: wc, relu: relu, into: y.data)
        }
    }
    return record(relu ? "batch_norm_relu" : "batch_norm", y, [x, gamma, beta]) { g in
        if GradMode.isEnabled {
            precondition(sync == nil, "synchronised batch norm has no double backward")
            // A graph is being created: differentiate the composite formula instead.
            return vjpByRecompute([x, gamma, beta], g) {
                let z = batchNormComposite($0[0], $0[1], $0[2], eps: eps)
                return relu ? z.relu() : z
            }
        }
        // Fused: gx = gamma*invstd * (g - mean(g) - xhat * mean(g*xhat)); dgamma = sum(g*xhat); dbeta = sum(g)
        let gp = g.data
        // The fused ReLU's mask, x * scale + shift > 0, is recomputed from x (read anyway) by the
        // forward's own expression rather than read from the output: one stream of the
        // activation less in each of the two passes, which are bound by memory traffic.
        // Per channel: sum of g and of g (x - mean), g zeroed where the fused ReLU's output is.
        let (wideG, wideGCentered) = repeated(meanF).withUnsafeBufferPointer { mu in
            let mu = mu.baseAddress!
            return wideScale.withUnsafeBufferPointer { sc in
                wideShift.withUnsafeBufferPointer { sh in
                    channelSumPairs(rows: wm, channels: wc, flushRows: flushRows) { r, a, b in
                        let xr = xp + r * wc, gr = gp + r * wc
                        if relu {
                            for j in 0..<wc { let gj = xr[j] * sc[j] + sh[j] > 0 ? gr[j] : 0; a[j] += gj; b[j] += gj * (xr[j] - mu[j]) }
                        } else {
                            for j in 0..<wc { a[j] += gr[j]; b[j] += gr[j] * (xr[j] - mu[j]) }
                        }
                    }
                }
            }
        }
        var sumG = folded(wideG), sumGCentered = folded(wideGCentered)
        // the parameters' gradients are this process's (the trainer averages them); the input's
        // sees every process's rows through the shared statistics
        let localSumGXhat = (0..<c).map { sumGCentered[$0] * Double(invStd[$0]) }, localSumG = sumG
        if let sync {
            let both = SynchronizedBatchNorm.sum(sumG + sumGCentered, sync)
            sumG = Array(both[0..<c]); sumGCentered = Array(both[c...])
        }
        let sumGXhat = (0..<c).map { sumGCentered[$0] * Double(invStd[$0]) }
        let count = rows
        var gx: Tensor? = nil
        if x.tracksGrad {
            // gx = gamma invstd (g - mean(g) - xhat mean(g xhat)) = A g + B x + C per channel.
            let coefficients = UnsafeMutablePointer<Float>.allocate(capacity: 3 * wc)
            defer { coefficients.deallocate() }
            let ca = coefficients, cb = coefficients + wc, cc = coefficients + 2 * wc
            for j in 0..<c {
                let a = scale[j], meanG = Float(sumG[j] / count), meanGXhat = Float(sumGXhat[j] / count)
                ca[j] = a
                cb[j] = -a * meanGXhat * invStd[j]
                cc[j] = -a * meanG + a * meanGXhat * invStd[j] * meanF[j]
            }
            // repeated across the k channel groups of a widened row
            for q in stride(from: 1, to: k, by: 1) {
                for p in [ca, cb, cc] { (p + q * c).update(from: p, count: c) }
            }
            let out = Tensor(uninitialized: x.shape)
            let op = out.data
            wideScale.withUnsafeBufferPointer { sc in
                wideShift.withUnsafeBufferPointer { sh in
                    parallelFor(wm, minPerThread: max(1, 32_768 / wc)) { s, e in
                        for r in s..<e {
                            let xr = xp + r * wc, gr = gp + r * wc, orow = op + r * wc
                            if relu {
                                for j in 0..<wc { orow[j] = ca[j] * (xr[j] * sc[j] + sh[j] > 0 ? gr[j] : 0) + cb[j] * xr[j] + cc[j] }
                            } else {
                                for j in 0..<wc { orow[j] = ca[j] * gr[j] + cb[j] * xr[j] + cc[j] }
                            }
                        }
                    }
                }
            }
            gx = out
        }
        let gGamma = gamma.tracksGrad ? Tensor(shape: gamma.shape, data: localSumGXhat.map { Float($0) }) : nil
        let gBeta = beta.tracksGrad ? Tensor(shape: beta.shape, data: localSumG.map { Float($0) }) : nil
        return [gx, gGamma, gBeta]
    }
}
