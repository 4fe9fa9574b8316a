import Foundation

// Shape ops: reshape shares storage; permute, slice and concat copy. Each one's backward is
// another of them (permute <-> inverse permute, slice <-> pad, concat <-> slices).

extension Tensor {
    /// Same values, new shape (one dimension may be -1). Shares storage.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            s[i] = count / Swift.max(known, 1)
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        if s == shape { return self }
        let inShape = shape
        return record("reshape", Tensor(shape: s, storage: storage), [self]) { g in [g.reshape(inShape)] }
    }

    /// Flattens all axes after the first: (N, ...) -> (N, prod(...)).
    public func flattenBatch() -> Tensor { reshape([shape[0], -1]) }

    /// Reorders axes: output axis i is input axis `order[i]`.
    public func permute(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute order \(order) is not a permutation of rank \(rank)")
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        let inStrides = stridesOf(shape)
        let srcStrides = order.map { inStrides[$0] }
        let r = rank
        let inner = outShape[r - 1], innerStride = srcStrides[r - 1]
        let outer = count / Swift.max(inner, 1)
        let x = data, y = out.data
        parallelFor(outer, minPerThread: Swift.max(1, 16_384 / Swift.max(inner, 1))) { s, e in
            var index = [Int](repeating: 0, count: r)
            // multi-index of the first outer row in this chunk
            var rem = s
            for d in stride(from: r - 2, through: 0, by: -1) { index[d] = rem % outShape[d]; rem /= outShape[d] }
            var src = 0
            for d in 0..<(r - 1) { src += index[d] * srcStrides[d] }
            for o in s..<e {
                let po = y + o * inner
                for j in 0..<inner { po[j] = x[src + j * innerStride] }
                var d = r - 2
                while d >= 0 {
                    index[d] += 1; src += srcStrides[d]
                    if index[d] < outShape[d] { break }
                    src -= srcStrides[d] * outShape[d]; index[d] = 0
                    d -= 1
                }
            }
        }
        var inverse = [Int](repeating: 0, count: r)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return record("permute", out, [self]) { g in [g.permute(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizeAxis(a, rank), normalizeAxis(b, rank))
        return permute(order)
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizeAxis(axis, rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax], "slice \(range) out of bounds for axis \(ax) of \(shape)")
        var outShape = shape
        outShape[ax] = range.count
        let out = Tensor(uninitialized: outShape)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let full = shape[ax], len = range.count, start = range.lowerBound
        for o in 0..<outer {
            (out.data + o * len * inner).update(from: data + (o * full + start) * inner, count: len * inner)
        }
        return record("slice", out, [self]) { g in [g.padSlice(axis: ax, start: start, length: full)] }
    }

    /// Places this tensor at `start` along `axis` inside zeros of length `length` (the adjoint of slice).
    func padSlice(axis ax: Int, start: Int, length: Int) -> Tensor {
        var outShape = shape
        outShape[ax] = length
        let out = Tensor.zeros(outShape)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let len = shape[ax]
        for o in 0..<outer {
            (out.data + (o * length + start) * inner).update(from: data + o * len * inner, count: len * inner)
        }
        return record("pad_slice", out, [self]) { g in [g.slice(axis: ax, start..<(start + len))] }
    }
}

/// Joins tensors along `axis`; all other axes must match.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat of no tensors")
    let first = tensors[0]
    let ax = normalizeAxis(axis, first.rank)
    for t in tensors {
        precondition(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] },
                     "concat: \(t.shape) does not match \(first.shape) outside axis \(ax)")
    }
    var outShape = first.shape
    outShape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
    let out = Tensor(uninitialized: outShape)
    let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
    let total = outShape[ax]
    var offset = 0
    var ranges: [Range<Int>] = []
    for t in tensors {
        let len = t.shape[ax]
        for o in 0..<outer {
            (out.data + (o * total + offset) * inner).update(from: t.data + o * len * inner, count: len * inner)
        }
        ranges.append(offset..<(offset + len))
        offset += len
    }
    return record("concat", out, tensors) { g in ranges.map { g.slice(axis: ax, $0) } }
}
