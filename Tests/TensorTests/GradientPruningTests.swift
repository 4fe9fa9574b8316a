@testable import Tensor
import XCTest

/// `gradients(of:wrt:)` runs the backward of the nodes between the output and the tensors asked
/// for, nothing before them (MCL's saliency gradient at a late layer, as torch.autograd.grad).
final class GradientPruningTests: XCTestCase {
    func testOnlyTheNodesLeadingToTheTargetsRunTheirBackward() {
        let x = randomTensor([2, 3], seed: 1).copy()
        x.requiresGrad = true
        var earlyBackwards = 0
        // the layers before the target, and a residual branch that bypasses it
        let early = record("early", (x * 1).detached(), [x]) { g in earlyBackwards += 1; return [g] }
        let target = early * 2
        let root = (target * 3).sum() + (early * 5).sum()
        for createGraph in [false, true] {
            let g = gradients(of: root, wrt: [target], createGraph: createGraph, retainGraph: true)[0]!
            XCTAssertEqual(g.toArray(), [Float](repeating: 3, count: 6), "createGraph \(createGraph)")
        }
        XCTAssertEqual(earlyBackwards, 0)
        // asked for both, the gradient of the earlier one sums its paths (through the target and around it)
        let both = gradients(of: root, wrt: [target, x], retainGraph: true)
        XCTAssertEqual(both[0]!.toArray(), [Float](repeating: 3, count: 6))
        XCTAssertEqual(both[1]!.toArray(), [Float](repeating: 11, count: 6))
        XCTAssertEqual(earlyBackwards, 1)
    }
}
