@testable import Tensor
import XCTest

/// The conv kernels write every element of their output whatever the buffer held before (the
/// pool hands back used buffers): with temporal taps in the padding skipped, a kernel that left
/// the dead taps' part of gW, or a skipped block of y, unwritten would pass on fresh zeroed
/// memory and fail on reused memory.
final class ConvKernelOutputTests: XCTestCase {
    func testEveryOutputElementIsWrittenWithDeadTemporalTaps() {
        // (input, output channels): few rows (the whole-matrix path) with one and two frames,
        // then blocked and implicit paths with one and two frames; 3x3x3, padded by one.
        let cases: [([Int], Int)] = [([2, 1, 3, 3, 2], 3), ([1, 2, 3, 3, 2], 3), ([8, 1, 4, 4, 40], 16),
                                     ([4, 2, 8, 8, 33], 24), ([4, 2, 8, 8, 24], 32)]
        for (name, options) in [("reference", EngineOptions.reference()), ("blocked", EngineOptions(blockedConvs: true, implicitConvs: false)),
                                ("implicit", EngineOptions(blockedConvs: true, implicitConvs: true)), ("AVX2's paths", .avx2())] {
            Engine.with(options) {
            for (i, (shape, o)) in cases.enumerated() {
                let g = ConvGeometry(input: shape, weight: [o, 3, 3, 3, shape[4]], stride: [1, 1, 1], padding: [1, 1, 1])
                var rng = RandomGenerator(seed: UInt64(300 + i))
                let x = Tensor.randn(g.inputShape, rng: &rng), w = Tensor.randn(g.weightShape, rng: &rng)
                let gy = Tensor.randn(g.outputShape, rng: &rng)
                func run(_ fill: Float) -> [[Float]] {
                    let y = Tensor.zeros(g.outputShape), gx = Tensor.zeros(g.inputShape), gw = Tensor.zeros(g.weightShape)
                    for t in [y, gx, gw] { t.data.update(repeating: fill, count: t.count) }
                    runConvKernel(.forward, convPath(g, .forward), g, x.data, w.data, y.data)
                    runConvKernel(.inputGrad, convPath(g, .inputGrad), g, gy.data, w.data, gx.data)
                    runConvKernel(.weightGrad, convPath(g, .weightGrad), g, x.data, gy.data, gw.data)
                    return [y.toArray(), gx.toArray(), gw.toArray()]
                }
                let clean = run(0), poisoned = run(.nan)
                for (j, product) in ["output", "input gradient", "weight gradient"].enumerated() {
                    XCTAssertFalse(poisoned[j].contains { $0.isNaN }, "\(name) case \(i): \(product) left unwritten")
                    XCTAssertTrue(poisoned[j] == clean[j], "\(name) case \(i): \(product) depends on the buffer's old contents")
                }
            }
            }
        }
    }
}
