import Tensor
import XCTest

/// Finite-difference gradient checking in Float32 with a tolerance that fits it: central
/// differences of a scalar loss L = sum(f(inputs) * r) (r fixed random, accumulated in Double)
/// against the tape's gradient, for every element of every input.
struct GradCheck {
    var eps: Float = 1e-2
    var tolerance: Float = 1e-2

    static func loss(_ y: Tensor, _ r: [Float]) -> Double {
        var s = 0.0
        for i in 0..<y.count { s += Double(y.data[i]) * Double(r[i]) }
        return s
    }

    /// Returns the worst error relative to the largest gradient magnitude, and asserts it.
    @discardableResult
    func check(_ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) -> Float {
        var rng = RandomGenerator(seed: 99)
        let y0 = noGrad { f(inputs) }
        let r = (0..<y0.count).map { _ in rng.normal() }
        for x in inputs { x.requiresGrad = true; x.grad = nil }
        let y = f(inputs)
        let rT = Tensor(shape: y.shape, data: r)
        (y * rT).sum().backward()
        var worst: Float = 0
        for (index, x) in inputs.enumerated() {
            let analytic = x.grad?.toArray() ?? [Float](repeating: 0, count: x.count)
            var numeric = [Float](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let saved = x.data[i]
                x.data[i] = saved + eps
                let plus = GradCheck.loss(noGrad { f(inputs) }, r)
                x.data[i] = saved - eps
                let minus = GradCheck.loss(noGrad { f(inputs) }, r)
                x.data[i] = saved
                numeric[i] = Float((plus - minus) / Double(2 * eps))
            }
            let scale = max(numeric.map(abs).max() ?? 0, 1e-3)
            let err = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, err / scale)
            XCTAssertLessThanOrEqual(err / scale, tolerance, "input \(index) \(x.shape): max |analytic - numeric| = \(err), scale \(scale)", file: file, line: line)
        }
        for x in inputs { x.requiresGrad = false; x.grad = nil }
        return worst
    }
}

func randomTensor(_ shape: [Int], seed: UInt64, std: Float = 1, awayFromZero: Float = 0) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    let t = Tensor.randn(shape, std: std, rng: &rng)
    if awayFromZero > 0 {
        // keep values off kinks (relu at 0) so finite differences do not straddle them
        for i in 0..<t.count { t.data[i] += t.data[i] >= 0 ? awayFromZero : -awayFromZero }
    }
    return t
}

func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "length differs \(message)", file: file, line: line)
    let scale = max(b.map(abs).max() ?? 0, 1e-6)
    let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(err / scale, tolerance, "max relative error \(err / scale) \(message)", file: file, line: line)
}
