import Foundation

// Elementwise ops. Binary ops broadcast NumPy-style; their backward reduces the gradient back
// to each input's shape with `sum(to:)`, which is itself differentiable.

/// The broadcast shape of two shapes, or a precondition failure naming both.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
        out[i] = max(da, db)
    }
    return out
}

/// Strides of `shape` read as a broadcast of itself to `target` (0 along broadcast axes).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let s = stridesOf(shape)
    let off = target.count - shape.count
    return (0..<target.count).map { i in i < off || shape[i - off] == 1 ? 0 : s[i - off] }
}

protocol BinaryKernel { static func apply(_ a: Float, _ b: Float) -> Float }
enum AddKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MulKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }
enum TakeRightKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { b } }

/// out[i] = K(a[bcast i], b[bcast i]) over the broadcast shape `shape`.
func binaryKernel<K: BinaryKernel>(_: K.Type, _ a: UnsafePointer<Float>, _ aShape: [Int],
                                  _ b: UnsafePointer<Float>, _ bShape: [Int],
                                  _ out: UnsafeMutablePointer<Float>, _ shape: [Int]) {
    let n = shape.reduce(1, *)
    let aCount = aShape.reduce(1, *), bCount = bShape.reduce(1, *)
    if aCount == n && bCount == n {
        parallelFor(n) { s, e in for i in s..<e { out[i] = K.apply(a[i], b[i]) } }
        return
    }
    if bCount == 1 && aCount == n {
        let bv = b[0]
        parallelFor(n) { s, e in for i in s..<e { out[i] = K.apply(a[i], bv) } }
        return
    }
    if aCount == 1 && bCount == n {
        let av = a[0]
        parallelFor(n) { s, e in for i in s..<e { out[i] = K.apply(av, b[i]) } }
        return
    }
    // b repeats along leading axes (e.g. a per-channel vector against channels-last data).
    let bCore = Array(bShape.drop(while: { $0 == 1 }))
    if aCount == n && bCount > 0 && n % bCount == 0 && Array(shape.suffix(bCore.count)) == bCore {
        let rows = n / bCount
        parallelFor(rows, minPerThread: max(1, 32_768 / bCount)) { s, e in
            for r in s..<e {
                let ao = a + r * bCount, oo = out + r * bCount
                for j in 0..<bCount { oo[j] = K.apply(ao[j], b[j]) }
            }
        }
        return
    }
    // General case: walk the output with per-input strides, innermost axis as the inner loop.
    let sa = broadcastStrides(aShape, to: shape), sb = broadcastStrides(bShape, to: shape)
    let rank = shape.count
    if rank == 0 { out[0] = K.apply(a[0], b[0]); return }
    let inner = shape[rank - 1], ia = sa[rank - 1], ib = sb[rank - 1]
    let outer = n / max(inner, 1)
    var index = [Int](repeating: 0, count: rank)
    var oa = 0, ob = 0
    for o in 0..<outer {
        let po = out + o * inner
        for j in 0..<inner { po[j] = K.apply(a[oa + j * ia], b[ob + j * ib]) }
        // advance the multi-index over the outer axes
        var d = rank - 2
        while d >= 0 {
            index[d] += 1; oa += sa[d]; ob += sb[d]
            if index[d] < shape[d] { break }
            oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d]; index[d] = 0
            d -= 1
        }
    }
}

func binaryForward<K: BinaryKernel>(_ k: K.Type, _ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(a.shape, b.shape)
    let out = Tensor(uninitialized: shape)
    binaryKernel(k, a.data, a.shape, b.data, b.shape, out.data, shape)
    return out
}

public func + (a: Tensor, b: Tensor) -> Tensor {
    record("add", binaryForward(AddKernel.self, a, b), [a, b]) { g in
        [a.tracksGrad ? g.sum(to: a.shape) : nil, b.tracksGrad ? g.sum(to: b.shape) : nil]
    }
}

public func - (a: Tensor, b: Tensor) -> Tensor {
    record("sub", binaryForward(SubKernel.self, a, b), [a, b]) { g in
        [a.tracksGrad ? g.sum(to: a.shape) : nil, b.tracksGrad ? (-g).sum(to: b.shape) : nil]
    }
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    record("mul", binaryForward(MulKernel.self, a, b), [a, b]) { g in
        [a.tracksGrad ? (g * b).sum(to: a.shape) : nil, b.tracksGrad ? (g * a).sum(to: b.shape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) -> Tensor {
    record("div", binaryForward(DivKernel.self, a, b), [a, b]) { g in
        [a.tracksGrad ? (g / b).sum(to: a.shape) : nil,
         b.tracksGrad ? (-(g * a) / (b * b)).sum(to: b.shape) : nil]
    }
}

public func + (a: Tensor, s: Float) -> Tensor { a.map("add_scalar", { $0 + s }) { g in g } }
public func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
public func * (a: Tensor, s: Float) -> Tensor { a.map("mul_scalar", { $0 * s }) { g in g * s } }
public func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
public func * (s: Float, a: Tensor) -> Tensor { a * s }
public func + (s: Float, a: Tensor) -> Tensor { a + s }
public func - (s: Float, a: Tensor) -> Tensor { (-a) + s }
public prefix func - (a: Tensor) -> Tensor { a.map("neg", { -$0 }) { g in -g } }

extension Tensor {
    /// A unary op: `f` elementwise forward, `vjp` maps the output gradient to the input's.
    @inline(__always)
    func map(_ name: String, _ f: @escaping (Float) -> Float, _ vjp: @escaping (Tensor) -> Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        parallelFor(count) { s, e in for i in s..<e { y[i] = f(x[i]) } }
        return record(name, out, [self]) { g in [vjp(g)] }
    }

    /// A constant (untracked) tensor computed from this one's values: masks and derivatives
    /// whose own derivative is zero almost everywhere.
    func constantMap(_ f: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        for i in 0..<count { y[i] = f(x[i]) }
        return out
    }

    public func exp() -> Tensor {
        map("exp", { Foundation.exp($0) }) { g in g * self.exp() }
    }

    public func log() -> Tensor {
        map("log", { Foundation.log($0) }) { g in g / self }
    }

    public func sqrt() -> Tensor {
        map("sqrt", { $0.squareRoot() }) { g in g * 0.5 / self.sqrt() }
    }

    public func square() -> Tensor { self * self }

    public func relu() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        parallelFor(count) { s, e in for i in s..<e { y[i] = Swift.max(x[i], 0) } }
        // The output (an alias without history, so no reference cycle) is the mask: y > 0 iff x > 0.
        let mask = out.detached()
        return record("relu", out, [self]) { g in [reluGrad(g, output: mask)] }
    }

    /// Clamps to [low, high]; the gradient passes where the value was inside.
    public func clamp(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
        map("clamp", { Swift.min(Swift.max($0, low), high) }) { g in
            g * self.constantMap { $0 >= low && $0 <= high ? 1 : 0 }
        }
    }
}

/// The ReLU's backward in one pass: g where the ReLU's output `y` is positive, 0 elsewhere.
/// Linear in g, so its own vector-Jacobian product is itself (double backward).
func reluGrad(_ g: Tensor, output y: Tensor) -> Tensor {
    precondition(g.shape == y.shape, "relu backward: gradient \(g.shape) for output \(y.shape)")
    let out = Tensor(uninitialized: g.shape)
    let gp = g.data, yp = y.data, op = out.data
    parallelFor(g.count) { s, e in for i in s..<e { op[i] = yp[i] > 0 ? gp[i] : 0 } }
    return record("relu_grad", out, [g]) { gg in [reluGrad(gg, output: y)] }
}

/// relu(a + b) for tensors of one shape, in one pass: a residual block's output.
public func addReLU(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "addReLU: shapes \(a.shape) and \(b.shape) differ")
    let out = Tensor(uninitialized: a.shape)
    let ap = a.data, bp = b.data, op = out.data
    parallelFor(a.count) { s, e in for i in s..<e { op[i] = Swift.max(ap[i] + bp[i], 0) } }
    let mask = out.detached()
    return record("add_relu", out, [a, b]) { g in
        let gz = reluGrad(g, output: mask)
        return [a.tracksGrad ? gz : nil, b.tracksGrad ? gz : nil]
    }
}
