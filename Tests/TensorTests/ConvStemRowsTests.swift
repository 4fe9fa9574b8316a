@testable import Tensor
import XCTest

/// The stems' row-vector path against the whole-matrix reference, with its 16-wide (AVX-512) and
/// 8-wide (AVX2) kernels: forward and weight gradient,
/// on strides of 1 to 3 along W, padded and not, 2-4 input channels, 1 to 16 output channels
/// (one and two chunks of 12), output rows of one, two and three vectors with a tail, and
/// temporal kernels that reach into the padding.
final class ConvStemRowsTests: XCTestCase {
    func testForwardAndWeightGradientMatchTheReference() {
        // (input, weight, stride, padding)
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([2, 2, 11, 30, 3], [11, 1, 7, 7, 3], [1, 2, 2], [0, 3, 3]),     // R(2+1)D's stem, odd rows
            ([1, 4, 6, 28, 2], [8, 1, 7, 7, 2], [1, 2, 2], [0, 3, 3]),       // the motion pathway's stem
            ([2, 3, 8, 26, 3], [16, 3, 7, 7, 3], [1, 2, 2], [1, 3, 3]),      // R3D's: temporal taps in the padding
            ([1, 2, 5, 13, 3], [13, 1, 3, 3, 3], [1, 1, 1], [0, 1, 1]),      // stride 1, two chunks
            ([1, 1, 4, 80, 4], [5, 1, 3, 5, 4], [1, 1, 2], [0, 0, 2]),       // 40 outputs: a row of three vectors
            ([1, 2, 7, 40, 1], [1, 2, 2, 4, 1], [2, 1, 3], [0, 1, 0]),       // stride 3 along W, even kernel
            ([1, 1, 3, 100, 3], [12, 1, 1, 7, 3], [1, 1, 2], [0, 0, 3])]    // exactly one chunk, 50 outputs
        for (i, (input, weight, stride, padding)) in cases.enumerated() {
            let g = ConvGeometry(input: input, weight: weight, stride: stride, padding: padding)
            XCTAssertTrue(g.isStemShape, "case \(i) \(g)")
            var rng = RandomGenerator(seed: UInt64(900 + i))
            let x = Tensor.randn(g.inputShape, rng: &rng), w = Tensor.randn(g.weightShape, rng: &rng), gy = Tensor.randn(g.outputShape, rng: &rng)
            func products(_ path: ConvPath?, _ options: EngineOptions) -> [[Float]] {
                let y = Tensor.zeros(g.outputShape), gw = Tensor.zeros(g.weightShape)
                // poisoned: every element must be written
                for t in [y, gw] { t.data.update(repeating: .nan, count: t.count) }
                Engine.with(options) {
                    runConvKernel(.forward, path ?? convPath(g, .forward), g, x.data, w.data, y.data)
                    runConvKernel(.weightGrad, path ?? convPath(g, .weightGrad), g, x.data, gy.data, gw.data)
                }
                return [y.toArray(), gw.toArray()]
            }
            let reference = products(nil, .reference())
            // the 16-wide kernels where this build has them, and the 8-wide ones AVX2 runs
            for (kernels, options) in [("widest", EngineOptions.reference()), ("AVX2", .avx2())] {
                let rows = products(.stemRows, options)
                for (j, name) in ["output", "weight gradient"].enumerated() {
                    let scale = reference[j].map(abs).max()!
                    let error = zip(reference[j], rows[j]).map { abs($0 - $1) }.max()! / scale
                    XCTAssertLessThan(error, 1e-5, "case \(i) \(g), \(kernels) kernels: \(name)")
                }
            }
        }
    }

    func testTheRoutingTakesItOnlyForTheStems() {
        let on = EngineOptions(blockedConvs: true, implicitConvs: true, winogradConvs: true, stemRowConvs: true)
        let stem = ConvGeometry(input: [2, 8, 56, 56, 3], weight: [11, 1, 7, 7, 3], stride: [1, 2, 2], padding: [0, 3, 3])
        let wide = ConvGeometry(input: [2, 8, 56, 56, 3], weight: [45, 1, 7, 7, 3], stride: [1, 2, 2], padding: [0, 3, 3])
        let deep = ConvGeometry(input: [2, 8, 28, 28, 16], weight: [16, 1, 3, 3, 16], stride: [1, 1, 1], padding: [0, 1, 1])
        XCTAssertEqual(convPath(stem, .forward, options: on), .stemRows)
        XCTAssertEqual(convPath(stem, .weightGrad, options: on), .stemRows)
        XCTAssertNotEqual(convPath(stem, .inputGrad, options: on), .stemRows, "no input gradient kernel")
        XCTAssertNotEqual(convPath(wide, .forward, options: on), .stemRows)
        XCTAssertNotEqual(convPath(deep, .forward, options: on), .stemRows)
        XCTAssertEqual(convPath(stem, .forward, options: .avx2()), .stemRows, "8-wide kernels on AVX2")
        XCTAssertNotEqual(convPath(stem, .forward, options: .reference()), .stemRows)
    }
}
