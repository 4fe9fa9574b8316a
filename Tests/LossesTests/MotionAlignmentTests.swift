import Foundation
import Losses
import Tensor
import XCTest

/// MCL's motion alignment loss, piece by piece, by hand.
final class MotionAlignmentTests: XCTestCase {
    /// G and A of shape (1, 1, 2, 2, 2): w = mean of G over H, W per channel; P = ReLU(sum_c w_c X_c).
    func testSaliencyWeighsTheGradientOrTheActivation() {
        // channel 0 of G: 1, 2, 3, 4 (mean 2.5); channel 1: -1, -1, -1, -1 (mean -1)
        let g = Tensor(shape: [1, 1, 2, 2, 2], data: [1, -1, 2, -1, 3, -1, 4, -1])
        let a = Tensor(shape: [1, 1, 2, 2, 2], data: [0, 1, 1, 0, 2, 2, 0, 4])
        let byGradient = MotionAlignment.saliency(gradient: g, activation: a, weighting: .gradient)
        XCTAssertEqual(byGradient.shape, [1, 1, 2, 2])
        XCTAssertEqual(byGradient.toArray(), [3.5, 6, 8.5, 11] as [Float])
        let byActivation = MotionAlignment.saliency(gradient: g, activation: a, weighting: .activation)
        // 2.5 a0 - a1, ReLU'd
        XCTAssertEqual(byActivation.toArray(), [0, 2.5, 3, 0] as [Float])
    }

    /// Boundaries (1, 4, 4, 4) to (1, 2, 2, 2): frames 0-1 and 2-3 summed, 2x2 pixel blocks averaged.
    func testTheTargetSumsFramesAndAveragesBlocks() {
        var values = [Float](repeating: 0, count: 64)
        for f in 0..<4 {
            for y in 0..<2 { for x in 2..<4 { values[(f * 4 + y) * 4 + x] = Float(f + 1) } }
            values[(f * 4 + 3) * 4 + 0] = 4
        }
        let m = MotionAlignment.target(boundaries: Tensor(shape: [1, 4, 4, 4], data: values), to: [1, 2, 2, 2])
        // step 0 = frames 1 + 2: top-right block 3 (all four pixels), bottom-left one pixel of 4 each frame: 8 / 4 = 2
        // step 1 = frames 3 + 4: top-right 7, bottom-left 2
        XCTAssertEqual(m.toArray(), [0, 3, 2, 0, 0, 7, 2, 0] as [Float])
    }

    func testAlignedMapsCostNothingAndDisjointOnesCostOnePerTerm() {
        let m = Tensor(shape: [2, 2, 2, 2], data: (0..<16).map { Float($0 % 5) + 0.5 })
        let mal = MotionAlignment(weighting: .gradient, spatiotemporalWeight: 1, temporalWeight: 1, spatialWeight: 1)
        let aligned = mal(saliency: m * 3, target: m)
        for t in [aligned.spatiotemporal, aligned.temporal, aligned.spatial] { XCTAssertEqual(t.item(), 0, accuracy: 1e-6) }
        // saliency only in cell (0, 0) of step 0; target only in cell (1, 1) of step 1: every cosine is 0
        var p = [Float](repeating: 0, count: 8), q = [Float](repeating: 0, count: 8)
        p[0] = 1; q[7] = 1
        let disjoint = mal(saliency: Tensor(shape: [1, 2, 2, 2], data: p), target: Tensor(shape: [1, 2, 2, 2], data: q))
        XCTAssertEqual(disjoint.spatiotemporal.item(), 1, accuracy: 1e-6)
        XCTAssertEqual(disjoint.temporal.item(), 1, accuracy: 1e-6)
        XCTAssertEqual(disjoint.spatial.item(), 1, accuracy: 1e-6)
        XCTAssertEqual(disjoint.total.item(), 3, accuracy: 1e-5)
    }

    /// The spatio-temporal term weighs steps by a softmax over time of the target's totals: a
    /// step the target barely moves in counts for little.
    func testStepsAreWeightedByTheTargetsMotion() {
        // step 0: target total 10, saliency aligned; step 1: target total 0.1, saliency orthogonal
        let m = Tensor(shape: [1, 2, 1, 2], data: [5, 5, 0.1, 0])
        let p = Tensor(shape: [1, 2, 1, 2], data: [1, 1, 0, 1])
        let st = MotionAlignment(weighting: .gradient, spatiotemporalWeight: 1, temporalWeight: 1, spatialWeight: 1)(saliency: p, target: m).spatiotemporal.item()
        let w1 = Float(exp(0.1) / (exp(10) + exp(0.1)))
        XCTAssertEqual(st, w1 * 1, accuracy: 1e-6)
    }

    func testTheLossGradientWithRespectToTheSaliencyMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 5)
        let m = Tensor.uniform([2, 3, 2, 2], low: 0, high: 1, rng: &rng)
        let p = Tensor.uniform([2, 3, 2, 2], low: 0.1, high: 1, rng: &rng)
        p.requiresGrad = true
        let mal = MotionAlignment(weighting: .gradient, spatiotemporalWeight: 1, temporalWeight: 0.5, spatialWeight: 2)
        let g = gradients(of: mal(saliency: p, target: m).total, wrt: [p])[0]!.toArray()
        let v = Tensor.uniform(p.shape, low: -1, high: 1, rng: &rng)
        let eps: Float = 1e-3
        let plus = noGrad { mal(saliency: p.detached() + v * eps, target: m).total.item() }
        let minus = noGrad { mal(saliency: p.detached() - v * eps, target: m).total.item() }
        let numeric = (plus - minus) / (2 * eps)
        let analytic = zip(g, v.toArray()).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertEqual(analytic, numeric, accuracy: 2e-3 * max(1, abs(numeric)))
    }
}
