@testable import Tensor
import XCTest

/// Synchronised batch norm against plain batch norm over the rows of every process: a stand-in
/// collective plays a second process that holds the same rows and the same output gradient, so
/// its sums are this process's doubled, and the reference is batch norm of the rows twice over.
final class SynchronizedBatchNormTests: XCTestCase {
    final class Twin: Collective {
        var rank: Int { 0 }
        var size: Int { 2 }
        func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) { for i in 0..<count { values[i] *= 2 } }
        func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) { for i in 0..<count { values[i] *= 2 } }
        func gatherRows(_ x: Tensor) -> Tensor { concat([x, x], axis: 0) }
        func gather(_ value: UInt64) -> [UInt64] { [value, value] }
    }

    func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { zip(a.toArray(), b.toArray()).map { abs($0 - $1) }.max()! }

    func testStatisticsAndGradientsAreThoseOfEveryProcesssRows() {
        for relu in [false, true] {
            let x = randomTensor([6, 3, 5], seed: 1, std: 2), w = randomTensor([6, 3, 5], seed: 2)
            let gamma = randomTensor([5], seed: 3), beta = randomTensor([5], seed: 4)
            for t in [x, gamma, beta] { t.requiresGrad = true }
            let (rm, rv) = (Tensor.zeros([5]), Tensor(shape: [5], data: [Float](repeating: 1, count: 5)))
            let y = SynchronizedBatchNorm.with(Twin()) {
                batchNorm(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, training: true, relu: relu)
            }
            (y * w).sum().backward()
            let (gx, gGamma, gBeta) = (x.grad!, gamma.grad!, beta.grad!)

            // the reference: both processes' rows in one batch, both losses
            let x2 = concat([x.detached(), x.detached()], axis: 0), gamma2 = gamma.detached().copy(), beta2 = beta.detached().copy()
            for t in [x2, gamma2, beta2] { t.requiresGrad = true }
            let (rm2, rv2) = (Tensor.zeros([5]), Tensor(shape: [5], data: [Float](repeating: 1, count: 5)))
            let y2 = batchNorm(x2, gamma: gamma2, beta: beta2, runningMean: rm2, runningVar: rv2, training: true, relu: relu)
            (y2 * concat([w, w], axis: 0)).sum().backward()
            XCTAssertLessThan(maxDifference(y, y2.slice(axis: 0, 0..<6)), 1e-5, "output, relu \(relu)")
            XCTAssertLessThan(maxDifference(rm, rm2), 1e-6, "running mean")
            XCTAssertLessThan(maxDifference(rv, rv2), 1e-5, "running variance (over every process's count)")
            // this process's input gradient is the reference's for its rows; its parameter
            // gradients are its own share (half), which the trainer's average over processes sums
            XCTAssertLessThan(maxDifference(gx, x2.grad!.slice(axis: 0, 0..<6)), 1e-4, "input gradient, relu \(relu)")
            XCTAssertLessThan(maxDifference(gGamma * 2, gamma2.grad!), 1e-4, "gamma gradient")
            XCTAssertLessThan(maxDifference(gBeta * 2, beta2.grad!), 1e-4, "beta gradient")
        }
    }
}
