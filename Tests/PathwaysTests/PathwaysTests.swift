import Backbones
import Foundation
import Losses
import Pathways
import Tensor
import XCTest

final class PathwaysTests: XCTestCase {
    func tinyConfig(motion: Bool = true) -> MaCLRModel.Config {
        MaCLRModel.Config(visual: VideoResNetConfig(kind: .r3d18, width: 0.0625, blocksPerStage: [1, 1, 1, 1]),
                          motion: motion ? .frames(FrameResNetConfig(width: 0.0625, blocksPerStage: [1, 1, 1, 1], inputChannels: 2)) : nil,
                          weightInit: .torchvision, headHidden: 16, embedding: 8, queueSize: 12, momentum: 0.9, keyBatchNorm: .shuffledSubBatches,
                          loss: MaCLRLoss(crossModalWeight: 1, motionIntraWeight: 0, temperature: 0.1))
    }

    func testMomentumUpdateIsAnEMAOfTheQueryWeights() {
        let m = MaCLRModel(tinyConfig(), seed: 1)
        let q = m.visual.parameters()[0].tensor, k = m.visualKey.parameters()[0].tensor
        XCTAssertEqual(q.toArray(), k.toArray(), "keys start as a copy")
        let before = k.toArray()
        for i in 0..<q.count { q.data[i] += 1 }
        m.afterStep()
        for (i, b) in before.enumerated() { XCTAssertEqual(k.data[i], 0.9 * b + 0.1 * q.data[i], accuracy: 1e-6) }
    }

    func testQueueIsARingOfTheNewestKeys() {
        let queue = EmbeddingQueue(size: 5, dimension: 2, seed: 1)
        queue.enqueue(Tensor(shape: [3, 2], data: [1, 1, 2, 2, 3, 3]))
        queue.enqueue(Tensor(shape: [3, 2], data: [4, 4, 5, 5, 6, 6]))
        XCTAssertEqual(queue.keys.toArray(), [6, 6, 2, 2, 3, 3, 4, 4, 5, 5])
        XCTAssertEqual(queue.pointer, 1)
    }

    func testShuffledKeysComeBackInTheirOwnOrder() {
        // One sub-batch: BN over the whole (shuffled) batch is permutation invariant, so the keys
        // must equal a plain train-mode forward row for row.
        var c = tinyConfig(); c.keySubBatches = 1
        let m = MaCLRModel(c, seed: 2)
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randn([4, 4, 16, 16, 3], rng: &rng)
        let va = Tensor.randn([4, 4, 16, 16, 3], rng: &rng)
        let terms = m.losses(rgbA: va, rgbB: x, motionA: nil, motionB: nil, rng: &rng)
        XCTAssertNil(terms.visualToMotion)
        m.visualKey.train()
        let plain = noGrad { m.visualKey(x) }
        m.afterStep()
        // the enqueued keys are the shuffled-then-restored ones: rows 0..3 of the queue
        let queued = Array(m.visualQueue.keys.toArray().prefix(4 * 8))
        for (a, b) in zip(queued, plain.toArray()) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    func testCrossModalTermsTrainBothPathways() {
        let m = MaCLRModel(tinyConfig(), seed: 4)
        var rng = RandomGenerator(seed: 5)
        let rgbA = Tensor.randn([4, 4, 16, 16, 3], rng: &rng), rgbB = Tensor.randn([4, 4, 16, 16, 3], rng: &rng)
        let flowA = Tensor.randn([4, 4, 32, 32, 2], rng: &rng), flowB = Tensor.randn([4, 4, 32, 32, 2], rng: &rng)
        let terms = m.losses(rgbA: rgbA, rgbB: rgbB, motionA: flowA, motionB: flowB, rng: &rng)
        XCTAssertNotNil(terms.visualToMotion); XCTAssertNotNil(terms.motionToVisual)
        terms.total.backward()
        let params = m.parameters()
        XCTAssertTrue(params.filter { $0.name.hasPrefix("visual.") }.allSatisfy { $0.tensor.grad != nil })
        XCTAssertTrue(params.filter { $0.name.hasPrefix("motion.") }.allSatisfy { $0.tensor.grad != nil })
        XCTAssertTrue(m.visualKey.parameters().allSatisfy { $0.tensor.grad == nil }, "keys take no gradient")
        XCTAssertEqual(terms.total.item(), terms.values["loss_v"]! + terms.values["loss_v2m"]! + terms.values["loss_m2v"]!, accuracy: 1e-4)
    }

    func testAnExportedEncoderLoadsThroughPathwaysAndEmbedsTheSame() throws {
        let config = VideoResNetConfig(kind: .r2plus1d18, width: 0.125, blocksPerStage: [1, 1, 1, 1])
        let net = VideoResNet(config, seed: 6)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("enc-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try net.saveSafetensors(to: url, metadata: VisualEncoder.metadata(for: config))
        let encoder = try VisualEncoder(contentsOf: url)
        var rng = RandomGenerator(seed: 7)
        let clip = Tensor.randn([2, 4, 32, 32, 3], rng: &rng)
        net.eval()
        XCTAssertEqual(encoder.embed(clip).toArray(), noGrad { net.features(clip) }.toArray())
        XCTAssertEqual(encoder.embed(clip).shape, [2, 64])   // 512 x 0.125
    }
}

/// The quickstart's model (R(2+1)D at width 1/4 and a frame-wise flow ResNet at 1/8: 3-, 11-,
/// 16-, 36-, 57-channel convs, the shapes the blocked and implicit conv paths were tuned on)
/// gives the same loss and parameter gradients whichever conv path the engine takes, against
/// the whole im2col matrix on OpenBLAS. Compared per parameter in relative L2 norm: a ReLU net's
/// gradient is not continuous, so scaling the RGB input by 1 +- 1e-6 already moves some
/// parameter's gradient by a fraction of a percent in that norm. The test measures that
/// sensitivity of the reference and holds every path to it; a wrong conv path moves gradients
/// by tens of percents.
final class ConvPathAgreementTests: XCTestCase {
    func testQuickstartGradientsAgreeAcrossConvPaths() {
        let saved = Engine.options
        defer { Engine.options = saved }
        // the quickstart's model (Recipes/quickstart.yaml), in-batch negatives
        let c = MaCLRModel.Config(visual: VideoResNetConfig(kind: .r2plus1d18, width: 0.25, blocksPerStage: [1, 1, 1, 1]),
                                  motion: .frames(FrameResNetConfig(width: 0.125, blocksPerStage: [1, 1, 1, 1], inputChannels: 2)),
                                  weightInit: .pytorch, headHidden: 64, embedding: 32, queueSize: 0, momentum: 0.99, keyBatchNorm: .shuffledSubBatches,
                                  loss: MaCLRLoss(crossModalWeight: 1, motionIntraWeight: 0, temperature: 0.1))
        func lossAndGradients(inputScale: Float = 1) -> (loss: Float, grads: [[Float]]) {
            let m = MaCLRModel(c, seed: 0)
            var rng = RandomGenerator(seed: 1)
            let rgb = (0..<2).map { _ in Tensor.randn([4, 8, 56, 56, 3], rng: &rng) * inputScale }
            let flow = (0..<2).map { _ in Tensor.randn([4, 8, 56, 56, 2], rng: &rng) }
            let terms = m.losses(rgbA: rgb[0], rgbB: rgb[1], motionA: flow[0], motionB: flow[1], rng: &rng)
            terms.total.backward()
            return (terms.total.toArray()[0], m.parameters().map { $0.tensor.grad?.toArray() ?? [] })
        }
        let names = MaCLRModel(c, seed: 0).parameters().map(\.name)
        /// The largest relative L2 difference of one parameter's gradient, and its name.
        func worstDifference(_ grads: [[Float]], _ reference: [[Float]]) -> (Double, String) {
            var worst = (0.0, "")
            for (i, (g, r)) in zip(grads, reference).enumerated() where !r.isEmpty {
                let norm = r.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                let diff = zip(g, r).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                if norm > 0 && diff / norm > worst.0 { worst = (diff / norm, names[i]) }
            }
            return worst
        }
        var runs: [(loss: Float, grads: [[Float]])] = []
        // whole im2col on OpenBLAS (the reference), blocked im2col, implicit GEMMs (with Winograd
        // and the stems' row vectors), and AVX2's paths (blocked im2col on OpenBLAS, 8-wide stems)
        for options in [EngineOptions.reference(threads: saved.threads), EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: false),
                        EngineOptions(threads: saved.threads, blockedConvs: true, implicitConvs: true), .avx2(threads: saved.threads)] {
            Engine.options = options
            runs.append(lossAndGradients())
        }
        // The margin: a path may differ from the reference by rounding, which a ReLU net amplifies
        // about as much as a 1e-6 change of the input moves the reference itself, never by a
        // wrong term (tens of percents). The threshold must sit well above that sensitivity.
        let threshold = 2e-2
        Engine.options = .reference(threads: saved.threads)
        let sensitivity = [1 + 1e-6, 1 - 1e-6].map { (scale: Float) in
            worstDifference(lossAndGradients(inputScale: scale).grads, runs[0].grads).0
        }.max()!
        print("reference path, input x (1 +- 1e-6): worst relative L2 gradient difference \(sensitivity)")
        XCTAssertGreaterThan(sensitivity, 0, "the reference path should move under a scaled input")
        XCTAssertLessThan(sensitivity, threshold / 2, "the reference's own rounding sensitivity leaves the threshold no margin")
        for path in 1..<runs.count {
            XCTAssertEqual(runs[path].loss, runs[0].loss, accuracy: 1e-4 * abs(runs[0].loss), "path \(path) loss")
            let worst = worstDifference(runs[path].grads, runs[0].grads)
            print("conv path \(path): worst relative L2 gradient difference \(worst.0) (\(worst.1))")
            XCTAssertLessThan(worst.0, threshold, "path \(path): worst parameter gradient \(worst.1)")
        }
    }
}

/// MCL's alignment loss through a whole (tiny) visual pathway: double backward end to end.
final class AlignmentGradientTests: XCTestCase {
    /// The derivative of L_MAL along a random direction in the projection head's output layer,
    /// from the engine's double backward (G = dS/dA runs back through the head, pooling, the
    /// block's BN and residual ReLU to the conv's output), against central differences of the
    /// loss. Only weights past the last ReLU are moved: moving any other weight flips ReLU masks
    /// inside G, which makes the loss jump, so no finite difference could check it; those
    /// weights' gradients are checked to exist and be finite.
    func testTheAlignmentLossGradientMatchesFiniteDifferences() {
        let config = VideoResNetConfig(kind: .r3d18, width: 0.0625, blocksPerStage: [1, 1, 1, 1])
        let pathway = Pathway(visual: config, hidden: 8, output: 4, seed: 3)
        pathway.requireGradients()
        pathway.train()
        var rng = RandomGenerator(seed: 9)
        let x = Tensor.randn([4, 4, 32, 32, 3], rng: &rng)
        let key = Tensor.randn([4, 4], rng: &rng).l2Normalized()
        let boundaries = Tensor.uniform([4, 4, 32, 32], low: 0, high: 1, rng: &rng)
        let loss = MotionAlignment(weighting: .gradient, spatiotemporalWeight: 1, temporalWeight: 1, spatialWeight: 1)
        func value() -> Tensor {
            let (q, a) = pathway.embedding(x, capturing: nil)
            return MaCLRModel.alignmentTerms(loss, query: q, key: key, activation: a, boundaries: boundaries).total
        }
        let all = pathway.parameters()
        let grads = gradients(of: value(), wrt: all.map(\.tensor))
        for (p, g) in zip(all, grads) where !p.name.hasPrefix("head.2") {
            XCTAssertTrue(g?.toArray().allSatisfy(\.isFinite) ?? true, p.name)
        }
        XCTAssertTrue(zip(all, grads).contains { $0.0.name.hasPrefix("encoder.layer4") && ($0.1?.toArray().contains { $0 != 0 } ?? false) },
                      "the encoder's weights get a gradient through G")
        let moved = zip(all, grads).filter { $0.0.name.hasPrefix("head.2") }
        XCTAssertEqual(moved.count, 2, "the head's output layer: weight and bias")
        let directions = moved.map { Tensor.uniform($0.0.tensor.shape, low: -1, high: 1, rng: &rng) }
        let analytic = zip(moved, directions).reduce(Float(0)) { sum, pair in
            sum + zip(pair.0.1!.toArray(), pair.1.toArray()).reduce(0) { $0 + $1.0 * $1.1 }
        }
        XCTAssertNotEqual(analytic, 0)
        func shifted(_ step: Float) -> Float {
            let saved = moved.map { $0.0.tensor.toArray() }
            defer { for (m, s) in zip(moved, saved) { m.0.tensor.assign(s) } }
            for (m, d) in zip(moved, directions) { m.0.tensor.assign(zip(m.0.tensor.toArray(), d.toArray()).map { $0 + step * $1 }) }
            return GradMode.with(true) { value().item() }
        }
        let eps: Float = 1e-3
        let numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(abs(numeric), 1e-2), "analytic \(analytic), numeric \(numeric)")
    }
}
