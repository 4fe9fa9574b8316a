import Foundation

// Reductions over axes, and their adjoints: `sum(to:)` and `expand(to:)` are each other's
// backward, so every reduction stays differentiable to any order.

/// Sums `x` viewed as (outer, reduce, inner) over the middle axis into (outer, inner).
func sumMiddleKernel(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, reduce: Int, inner: Int) {
    if inner == 1 {
        parallelFor(outer, minPerThread: max(1, 32_768 / max(reduce, 1))) { s, e in
            for o in s..<e {
                let p = x + o * reduce
                var acc = SIMD16<Float>(repeating: 0)
                var r = 0
                while r + 16 <= reduce {
                    acc += UnsafeRawPointer(p + r).loadUnaligned(as: SIMD16<Float>.self)
                    r += 16
                }
                var total = acc.sum()
                while r < reduce { total += p[r]; r += 1 }
                out[o] = total
            }
        }
        return
    }
    // Parallel over inner columns (e.g. channels) when outer is small, else over outer.
    if outer >= Engine.threads {
        parallelFor(outer, minPerThread: max(1, 32_768 / max(reduce * inner, 1))) { s, e in
            for o in s..<e {
                let po = out + o * inner
                po.update(repeating: 0, count: inner)
                for r in 0..<reduce {
                    let px = x + (o * reduce + r) * inner
                    for i in 0..<inner { po[i] += px[i] }
                }
            }
        }
    } else {
        for o in 0..<outer {
            let po = out + o * inner
            parallelFor(inner, minPerThread: max(16, 32_768 / max(reduce, 1))) { s, e in
                for i in s..<e { po[i] = 0 }
                for r in 0..<reduce {
                    let px = x + (o * reduce + r) * inner
                    for i in s..<e { po[i] += px[i] }
                }
            }
        }
    }
}

func maxMiddleKernel(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, reduce: Int, inner: Int) {
    for o in 0..<outer {
        let po = out + o * inner
        po.update(repeating: -.infinity, count: inner)
        for r in 0..<reduce {
            let px = x + (o * reduce + r) * inner
            for i in 0..<inner where px[i] > po[i] || px[i].isNaN { po[i] = px[i] }
        }
    }
}

/// Sorted, unique, non-negative axes.
func normalizeAxes(_ axes: [Int], _ rank: Int) -> [Int] {
    Array(Set(axes.map { normalizeAxis($0, rank) })).sorted()
}

/// Splits sorted axes into runs of consecutive axes.
func contiguousRuns(_ axes: [Int]) -> [ClosedRange<Int>] {
    var runs: [ClosedRange<Int>] = []
    for a in axes {
        if let last = runs.last, last.upperBound + 1 == a { runs[runs.count - 1] = last.lowerBound...a } else { runs.append(a...a) }
    }
    return runs
}

extension Tensor {
    /// Forward of a reduction over axes with keepDims=true, via the middle-axis kernel, one run of
    /// consecutive axes at a time (last run first, so indices stay valid).
    func reduceKeepDims(_ axes: [Int], _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int) -> Void) -> Tensor {
        var cur = self.detached()
        for run in contiguousRuns(axes).reversed() {
            let outer = cur.shape[..<run.lowerBound].reduce(1, *)
            let red = cur.shape[run].reduce(1, *)
            let inner = cur.shape[(run.upperBound + 1)...].reduce(1, *)
            var newShape = cur.shape
            for a in run { newShape[a] = 1 }
            let out = Tensor(uninitialized: newShape)
            kernel(cur.data, out.data, outer, red, inner)
            cur = out
        }
        return cur
    }

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes ?? Array(0..<rank), rank)
        let kept = reduceKeepDims(ax) { sumMiddleKernel($0, $1, outer: $2, reduce: $3, inner: $4) }
        let outShape = keepDims ? kept.shape : shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        let out = Tensor(shape: outShape, storage: kept.storage)
        let inShape = shape, keptShape = kept.shape
        return record("sum", out, [self]) { g in [g.reshape(keptShape).expand(to: inShape)] }
    }

    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes ?? Array(0..<rank), rank)
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(n))
    }

    /// Max over `axes`; the gradient is shared equally among tied maxima.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes ?? Array(0..<rank), rank)
        let kept = reduceKeepDims(ax) { maxMiddleKernel($0, $1, outer: $2, reduce: $3, inner: $4) }
        let outShape = keepDims ? kept.shape : shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        let out = Tensor(shape: outShape, storage: kept.storage)
        let inShape = shape, keptShape = kept.shape
        return record("max", out, [self]) { g in
            // Constant routing weights: 1/ties where x equals its max, 0 elsewhere.
            let weights: Tensor = noGrad {
                let hit = binaryForward(SubKernel.self, self, kept).constantMap { $0 == 0 ? 1 : 0 }
                let ties = hit.sum(axes: ax, keepDims: true)
                return binaryForward(DivKernel.self, hit, ties)
            }
            return [g.reshape(keptShape).expand(to: inShape) * weights]
        }
    }

    /// log(sum(exp(x))) over `axes`, stabilised by the (constant) max.
    public func logSumExp(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes, rank)
        let m = noGrad { self.max(axes: ax, keepDims: true) }.detached()
        let safeM = m.constantMap { $0.isFinite ? $0 : 0 }
        let lse = (self - safeM).exp().sum(axes: ax, keepDims: true).log() + safeM
        if keepDims { return lse }
        return lse.reshape(shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element })
    }

    /// Sums broadcast axes away so the result has `target` shape (the adjoint of `expand`).
    public func sum(to target: [Int]) -> Tensor {
        if shape == target { return self }
        let off = rank - target.count
        precondition(off >= 0, "cannot sum \(shape) to \(target)")
        var axes: [Int] = Array(0..<off)
        for i in 0..<target.count where target[i] == 1 && shape[off + i] != 1 { axes.append(off + i) }
        for i in 0..<target.count { precondition(target[i] == 1 || target[i] == shape[off + i], "cannot sum \(shape) to \(target)") }
        return sum(axes: axes, keepDims: true).reshape(target)
    }

    /// Broadcasts to `target` by copying (the adjoint of `sum(to:)`).
    public func expand(to target: [Int]) -> Tensor {
        if shape == target { return self }
        let out = Tensor(uninitialized: target)
        let zero = Tensor(scalar: 0)
        binaryKernel(TakeRightKernel.self, zero.data, [], data, shape, out.data, target)
        let inShape = shape
        return record("expand", out, [self]) { g in [g.sum(to: inShape)] }
    }
}
