import Tensor
import XCTest

/// Every op's gradient against central finite differences.
final class OpGradientTests: XCTestCase {
    let check = GradCheck()

    func testBroadcastingBinaryOps() {
        let a = randomTensor([2, 3, 4], seed: 1)
        let b = randomTensor([3, 1], seed: 2)
        let c = randomTensor([4], seed: 3)
        let positive = randomTensor([2, 1, 4], seed: 4).constantPositive()
        check.check([a, b]) { $0[0] + $0[1] }
        check.check([a, c]) { $0[0] - $0[1] }
        check.check([b, a]) { $0[0] * $0[1] }
        check.check([a, positive]) { $0[0] / $0[1] }
        check.check([a]) { ($0[0] * 3 + 2) / 4 - 1 }
        check.check([a]) { -$0[0] }
    }

    func testUnaryOps() {
        let x = randomTensor([3, 5], seed: 5, awayFromZero: 0.1)
        let p = randomTensor([3, 5], seed: 6).constantPositive()
        check.check([x]) { $0[0].exp() }
        check.check([p]) { $0[0].log() }
        check.check([p]) { $0[0].sqrt() }
        check.check([x]) { $0[0].relu() }
        check.check([x]) { $0[0].clamp(min: -0.5, max: 0.7) }
    }

    func testReductions() {
        let x = randomTensor([2, 3, 4, 5], seed: 7)
        check.check([x]) { $0[0].sum() }
        check.check([x]) { $0[0].sum(axes: [1, 3]) }
        check.check([x]) { $0[0].mean(axes: [1, 2], keepDims: true) }
        check.check([x]) { $0[0].max(axes: [2]) }
        check.check([x]) { $0[0].max(axes: [0, 3], keepDims: true) }
        check.check([x]) { $0[0].logSumExp(axes: [3]) }
        check.check([x]) { $0[0].logSumExp(axes: [1, 2]) }
        let small = randomTensor([3, 1, 4], seed: 8)
        check.check([small]) { $0[0].expand(to: [2, 3, 5, 4]) }
        check.check([x]) { $0[0].sum(to: [3, 1, 5]) }
    }

    func testShapeOps() {
        let x = randomTensor([2, 3, 4], seed: 9)
        let y = randomTensor([2, 2, 4], seed: 10)
        check.check([x]) { $0[0].reshape([6, 4]) }
        check.check([x]) { $0[0].permute([2, 0, 1]) }
        check.check([x]) { $0[0].transposed(0, 2) }
        check.check([x]) { $0[0].slice(axis: 1, 1..<3) }
        check.check([x, y]) { concat([$0[0], $0[1]], axis: 1) }
    }

    func testMatmulAllTransposes() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randomTensor(ta ? [4, 3] : [3, 4], seed: 11)
            let b = randomTensor(tb ? [5, 4] : [4, 5], seed: 12)
            check.check([a, b]) { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        }
        let x = randomTensor([3, 4], seed: 13), w = randomTensor([2, 4], seed: 14), bias = randomTensor([2], seed: 15)
        check.check([x, w, bias]) { linear($0[0], weight: $0[1], bias: $0[2]) }
    }

    func testConv3dShapes() {
        // (input shape, kernel, stride, padding): full 3-D, (2+1)D spatial and temporal, strided,
        // pointwise (the GEMM-only path) and strided pointwise (a downsample shortcut).
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([2, 3, 5, 5, 2], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            // few rows (the whole-matrix path) with temporal taps in the padding: one frame
            // (every row reads the centre tap only), two frames (stretches reading different taps)
            ([2, 1, 3, 3, 2], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            ([1, 2, 3, 3, 2], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
            ([1, 4, 6, 6, 3], [1, 3, 3], [1, 2, 2], [0, 1, 1]),
            ([2, 4, 3, 3, 2], [3, 1, 1], [2, 1, 1], [1, 0, 0]),
            ([2, 2, 3, 3, 4], [1, 1, 1], [1, 1, 1], [0, 0, 0]),
            ([2, 4, 4, 4, 3], [1, 1, 1], [2, 2, 2], [0, 0, 0]),
            ([1, 2, 7, 7, 1], [1, 7, 7], [1, 2, 2], [0, 3, 3]),
            // temporal-only at stride 1 and 4x8x8 output positions: the im2col-free path, with two
            // samples so the centre tap runs as one GEMM over both
            ([2, 4, 8, 8, 2], [3, 1, 1], [1, 1, 1], [1, 0, 0]),
        ]
        for (i, (shape, k, s, p)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(20 + i))
            let w = randomTensor([3] + k + [shape[4]], seed: UInt64(40 + i), std: 0.3)
            check.check([x, w]) { conv3d($0[0], $0[1], stride: s, padding: p) }
        }
    }

    func testBatchNormTrainingAndEval() {
        let x = randomTensor([2, 2, 3, 3, 4], seed: 30)
        let gamma = randomTensor([4], seed: 31), beta = randomTensor([4], seed: 32)
        let rm = Tensor.zeros([4]), rv = Tensor.ones([4])
        // Looser: batch statistics make the finite differences noisier in Float32.
        GradCheck(eps: 1e-2, tolerance: 2e-2).check([x, gamma, beta]) {
            batchNorm($0[0], gamma: $0[1], beta: $0[2], runningMean: rm.copy(), runningVar: rv.copy(), training: true)
        }
        let rm2 = randomTensor([4], seed: 33), rv2 = randomTensor([4], seed: 34).constantPositive()
        check.check([x, gamma, beta]) {
            batchNorm($0[0], gamma: $0[1], beta: $0[2], runningMean: rm2, runningVar: rv2, training: false)
        }
    }

    func testFusedBatchNormReLUAndAddReLU() {
        let x = randomTensor([2, 2, 3, 3, 4], seed: 37)
        let gamma = randomTensor([4], seed: 38), beta = randomTensor([4], seed: 39)
        let rm = Tensor.zeros([4]), rv = Tensor.ones([4])
        // The fused kernels give the values and gradients of BN then ReLU, each checked against
        // finite differences above (finite differences of the fused op straddle the ReLU's kink
        // at the step batch statistics need).
        let upstream = randomTensor([2, 2, 3, 3, 4], seed: 40)
        func valueAndGrads(_ fused: Bool) -> [[Float]] {
            let p = [x.copy(), gamma.copy(), beta.copy()]
            for t in p { t.requiresGrad = true }
            let y = fused
                ? batchNorm(p[0], gamma: p[1], beta: p[2], runningMean: rm.copy(), runningVar: rv.copy(), training: true, relu: true)
                : batchNorm(p[0], gamma: p[1], beta: p[2], runningMean: rm.copy(), runningVar: rv.copy(), training: true).relu()
            (y * upstream).sum().backward()
            return [y.toArray()] + p.map { $0.grad!.toArray() }
        }
        for (f, c) in zip(valueAndGrads(true), valueAndGrads(false)) {
            XCTAssertLessThan(zip(f, c).map { abs($0 - $1) }.max()!, 1e-5)
        }
        let a = randomTensor([2, 3, 4], seed: 41, awayFromZero: 0.1), b = randomTensor([2, 3, 4], seed: 42, awayFromZero: 0.1)
        check.check([a, b]) { addReLU($0[0], $0[1]) }
        XCTAssertEqual(addReLU(a, b).toArray(), (a + b).relu().toArray())
    }

    /// The fused kernels against BN written with tensor ops, for channel counts whose rows the
    /// kernels widen (8, 11, 36, 57, 115) and with and without the fused ReLU.
    func testBatchNormKernelsMatchTheFormulaAtWidenedChannelCounts() {
        for (i, c) in [8, 11, 36, 57, 115].enumerated() {
            let x = randomTensor([4, 4, 7, 7, c], seed: UInt64(200 + i), std: 2) + 0.5
            let gamma = randomTensor([c], seed: UInt64(210 + i)), beta = randomTensor([c], seed: UInt64(220 + i))
            let upstream = randomTensor([4, 4, 7, 7, c], seed: UInt64(230 + i))
            for relu in [false, true] {
                func valueAndGrads(_ fused: Bool) -> [[Float]] {
                    let p = [x.copy(), gamma.copy(), beta.copy()]
                    for t in p { t.requiresGrad = true }
                    var y: Tensor
                    if fused {
                        y = batchNorm(p[0], gamma: p[1], beta: p[2], runningMean: Tensor.zeros([c]), runningVar: Tensor.ones([c]), training: true, relu: relu)
                    } else {
                        let centered = p[0] - p[0].mean(axes: [0, 1, 2, 3], keepDims: true)
                        let variance = (centered * centered).mean(axes: [0, 1, 2, 3], keepDims: true)
                        y = centered / (variance + 1e-5).sqrt() * p[1] + p[2]
                        if relu { y = y.relu() }
                    }
                    (y * upstream).sum().backward()
                    return [y.toArray()] + p.map { $0.grad!.toArray() }
                }
                for (j, (f, r)) in zip(valueAndGrads(true), valueAndGrads(false)).enumerated() {
                    let scale = r.map { abs($0) }.max()!
                    XCTAssertLessThan(zip(f, r).map { abs($0 - $1) }.max()! / scale, 1e-4, "\(c) channels, relu \(relu), output \(j)")
                }
            }
        }
    }

    func testPooling() {
        // distinct values so the max is unique and stable under the finite-difference step
        let x = Tensor(shape: [1, 3, 5, 5, 2], data: (0..<150).map { Float(($0 * 37) % 150) * 0.1 })
        check.check([x]) { maxPool3d($0[0], kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1]) }
        check.check([x]) { maxPool3d($0[0], kernel: [2, 2, 2], stride: [2, 2, 2]) }
        let y = randomTensor([2, 2, 3, 3, 4], seed: 35)
        check.check([y]) { $0[0].globalAveragePool() }
    }

    func testNormalizeSoftmaxCrossEntropyDropout() {
        let x = randomTensor([3, 5], seed: 36)
        check.check([x]) { $0[0].l2Normalized() }
        check.check([x]) { $0[0].softmax(axis: 1) }
        check.check([x]) { softmaxCrossEntropy($0[0], labels: [0, 4, 2]).reshape([1]) }
        check.check([x]) {
            var rng = RandomGenerator(seed: 5)  // the same mask on every evaluation
            return $0[0].dropout(0.3, training: true, rng: &rng)
        }
    }
}

extension Tensor {
    /// |x| + 0.5: values safely inside the domain of log, sqrt and division.
    func constantPositive() -> Tensor {
        let t = copy()
        for i in 0..<count { t.data[i] = abs(t.data[i]) + 0.5 }
        return t
    }
}
