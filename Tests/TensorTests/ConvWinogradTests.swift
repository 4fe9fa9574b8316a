@testable import Tensor
import XCTest

/// Winograd F(2x2, 3x3) against the whole-matrix reference, each of the three products, on
/// frames of odd and even sizes, channel counts with and without a 16-wide tail, and temporal
/// kernels of 1 to 3 taps with their padding.
final class ConvWinogradTests: XCTestCase {
    func testEachProductMatchesTheReference() {
        // (input, output channels, temporal taps, temporal padding)
        let cases: [([Int], Int, Int, Int)] = [([2, 2, 7, 6, 5], 7, 1, 0), ([1, 1, 8, 8, 33], 20, 1, 0), ([2, 1, 10, 12, 16], 32, 1, 0),
                                               ([1, 3, 5, 9, 48], 17, 1, 0), ([1, 1, 1, 1, 3], 4, 1, 0), ([2, 4, 6, 7, 16], 24, 3, 1),
                                               ([1, 5, 8, 8, 20], 9, 3, 0), ([2, 3, 5, 4, 8], 33, 2, 1), ([1, 1, 6, 6, 17], 16, 3, 1)]
        for (i, (shape, o, taps, temporalPadding)) in cases.enumerated() {
            let g = ConvGeometry(input: shape, weight: [o, taps, 3, 3, shape[4]], stride: [1, 1, 1], padding: [temporalPadding, 1, 1])
            XCTAssertTrue(g.isWinogradShape)
            var rng = RandomGenerator(seed: UInt64(700 + i))
            let x = Tensor.randn(g.inputShape, rng: &rng), w = Tensor.randn(g.weightShape, rng: &rng), gy = Tensor.randn(g.outputShape, rng: &rng)
            func products(_ path: ConvPath?) -> [[Float]] {
                let y = Tensor.zeros(g.outputShape), gx = Tensor.zeros(g.inputShape), gw = Tensor.zeros(g.weightShape)
                // poisoned: every element must be written
                for t in [y, gx, gw] { t.data.update(repeating: .nan, count: t.count) }
                Engine.with(.reference()) {
                    runConvKernel(.forward, path ?? convPath(g, .forward), g, x.data, w.data, y.data)
                    runConvKernel(.inputGrad, path ?? convPath(g, .inputGrad), g, gy.data, w.data, gx.data)
                    runConvKernel(.weightGrad, path ?? convPath(g, .weightGrad), g, x.data, gy.data, gw.data)
                }
                return [y.toArray(), gx.toArray(), gw.toArray()]
            }
            let reference = products(nil), winograd = products(.winograd)
            for (j, name) in ["output", "input gradient", "weight gradient"].enumerated() {
                let scale = reference[j].map(abs).max()!
                let error = zip(reference[j], winograd[j]).map { abs($0 - $1) }.max()! / scale
                XCTAssertLessThan(error, 1e-5, "case \(i) \(g): \(name)")
            }
        }
    }

    func testTheRoutingTakesItOnlyWhereItApplies() {
        let on = EngineOptions(blockedConvs: true, implicitConvs: true, winogradConvs: true)
        let spatial = ConvGeometry(input: [2, 4, 16, 16, 32], weight: [48, 1, 3, 3, 32], stride: [1, 1, 1], padding: [0, 1, 1])
        let strided = ConvGeometry(input: [2, 4, 16, 16, 32], weight: [48, 1, 3, 3, 32], stride: [1, 2, 2], padding: [0, 1, 1])
        let full = ConvGeometry(input: [2, 4, 16, 16, 32], weight: [48, 3, 3, 3, 32], stride: [1, 1, 1], padding: [1, 1, 1])
        let temporal = ConvGeometry(input: [2, 4, 16, 16, 32], weight: [48, 3, 1, 1, 32], stride: [1, 1, 1], padding: [1, 0, 0])
        for direction in ConvDirection.allCases {
            XCTAssertEqual(convPath(spatial, direction, options: on), .winograd)
            XCTAssertNotEqual(convPath(strided, direction, options: on), .winograd)
            XCTAssertEqual(convPath(full, direction, options: on), .winograd)
            XCTAssertNotEqual(convPath(temporal, direction, options: on), .winograd)
            XCTAssertEqual(convPath(spatial, direction, options: .avx2()), .winograd, "on OpenBLAS GEMMs")
            XCTAssertNotEqual(convPath(spatial, direction, options: .reference()), .winograd)
        }
    }
}
