import Tensor
import XCTest

/// Second derivatives through conv, BN, ReLU, add, pooling, linear and L2 normalise, against
/// finite differences of first derivatives.
final class DoubleBackwardTests: XCTestCase {
    /// A small conv net with every layer MCL's alignment loss differentiates twice through.
    /// params: w1 (4,1,3,3,2), gamma (4), beta (4), w2 (4,3,1,1,4), wl (3,4), bl (3)
    struct SmallNet {
        let x = randomTensor([2, 3, 6, 6, 2], seed: 100)
        let r = randomTensor([2, 3], seed: 101)
        var params: [Tensor] = [
            randomTensor([4, 1, 3, 3, 2], seed: 102, std: 0.4), randomTensor([4], seed: 103, std: 0.3) + 1,
            randomTensor([4], seed: 104, std: 0.3), randomTensor([4, 3, 1, 1, 4], seed: 105, std: 0.3),
            randomTensor([3, 4], seed: 106, std: 0.5), randomTensor([3], seed: 107, std: 0.1),
        ].map { $0.copy() }

        /// The activation after conv-BN-ReLU, and the embedding. The smooth head (conv, BN, add,
        /// average pool, linear, L2) makes the activation's gradient continuous in the weights, so
        /// a loss on that gradient can be checked by finite differences; the default head also has
        /// ReLU and max pooling after the activation.
        func forward(_ p: [Tensor], smoothHead: Bool = false) -> (activation: Tensor, z: Tensor) {
            let h = batchNorm(conv3d(x, p[0], padding: [0, 1, 1]), gamma: p[1], beta: p[2],
                              runningMean: Tensor.zeros([4]), runningVar: Tensor.ones([4]), training: true, relu: true)
            var r2 = conv3d(h, p[3], padding: [1, 0, 0])
            if smoothHead {
                r2 = batchNorm(r2, gamma: Tensor.ones([4]), beta: Tensor.zeros([4]), runningMean: Tensor.zeros([4]),
                               runningVar: Tensor.ones([4]), training: true) + h
                return (h, linear(r2.globalAveragePool(), weight: p[4], bias: p[5]).l2Normalized())
            }
            let pooled = maxPool3d(addReLU(r2, h), kernel: [1, 2, 2], stride: [1, 2, 2]).globalAveragePool()
            return (h, linear(pooled, weight: p[4], bias: p[5]).l2Normalized())
        }

        func loss(_ p: [Tensor]) -> Tensor { (forward(p).z * r).sum() }
    }

    func testHessianVectorProductMatchesFiniteDifferences() {
        let net = SmallNet()
        for p in net.params { p.requiresGrad = true }
        let v = net.params.enumerated().map { randomTensor($0.element.shape, seed: UInt64(200 + $0.offset)) }
        let g = gradients(of: net.loss(net.params), wrt: net.params, createGraph: true).map { $0! }
        let gv = zip(g, v).map { ($0 * $1).sum() }.reduce(Tensor(scalar: 0)) { $0 + $1 }
        let hv = gradients(of: gv, wrt: net.params).map { $0!.toArray() }

        func gradAt(_ sign: Float, _ eps: Float) -> [[Float]] {
            let shifted = zip(net.params, v).map { (p, d) -> Tensor in
                let t = noGrad { p + d * (sign * eps) }.copy(); t.requiresGrad = true; return t
            }
            return gradients(of: net.loss(shifted), wrt: shifted).map { $0!.toArray() }
        }
        let eps: Float = 1e-3
        let plus = gradAt(1, eps), minus = gradAt(-1, eps)
        var num = 0.0, den = 0.0
        for i in 0..<hv.count {
            for j in 0..<hv[i].count {
                let fd = Double(plus[i][j] - minus[i][j]) / Double(2 * eps)
                num += (Double(hv[i][j]) - fd) * (Double(hv[i][j]) - fd)
                den += fd * fd
            }
        }
        let relative = (num / den).squareRoot()
        XCTAssertGreaterThan(den, 1e-4, "the Hessian-vector product should not vanish")
        XCTAssertLessThan(relative, 2e-2, "||Hv - FD|| / ||FD|| = \(relative)")
    }

    /// The shape of MCL's alignment loss: a loss on the gradient of the similarity with respect
    /// to an activation, Grad-CAM-weighted and ReLU'd, differentiated with respect to the weights.
    func testLossOnActivationGradientMatchesFiniteDifferences() {
        var net = SmallNet()
        let target = randomTensor([2, 3, 6, 6, 1], seed: 300).constantPositive()
        func alignmentLoss(_ p: [Tensor]) -> Tensor {
            let (a, z) = net.forward(p, smoothHead: true)
            let s = (z * net.r).sum()
            let ga = gradients(of: s, wrt: [a], createGraph: true)[0]!
            let weights = ga.mean(axes: [1, 2, 3], keepDims: true)                   // (N,1,1,1,C)
            let cam = (a * weights).sum(axes: [4], keepDims: true).relu()              // (N,T,H,W,1)
            return (cam.reshape([2, -1]).l2Normalized() * target.reshape([2, -1]).l2Normalized()).sum()
        }
        net.params = net.params.map { $0.copy() }
        GradCheck(eps: 3e-3, tolerance: 3e-2).check(net.params) { p in
            // the inner gradient needs the weights tracked even while the checker probes values
            GradMode.with(true) {
                let tracked = p.map { t -> Tensor in t.requiresGrad ? t : { let c = t.detached(); c.requiresGrad = true; return c }() }
                return alignmentLoss(tracked).reshape([1])
            }
        }
    }
}
