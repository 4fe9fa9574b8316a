import Foundation
import Losses
import Tensor
import XCTest

final class LossTests: XCTestCase {
    func normalized(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return noGrad { Tensor.randn(shape, rng: &rng).l2Normalized() }.copy()
    }

    /// -log softmax(logits)[0] in Double.
    func crossEntropyAtZero(_ logits: [Double]) -> Double {
        let m = logits.max()!
        return -(logits[0] - m - Foundation.log(logits.map { Foundation.exp($0 - m) }.reduce(0, +)))
    }

    func dot(_ a: Tensor, _ i: Int, _ b: Tensor, _ j: Int) -> Double {
        let d = a.shape[1]
        return (0..<d).reduce(0.0) { $0 + Double(a.data[i * d + $1]) * Double(b.data[j * d + $1]) }
    }

    func testQueueInfoNCEByHand() {
        let q = normalized([3, 4], seed: 1), k = normalized([3, 4], seed: 2), queue = normalized([5, 4], seed: 3)
        let loss = Contrastive.infoNCE(query: q, positiveKey: k, queue: queue, temperature: 0.1).item()
        var expected = 0.0
        for i in 0..<3 {
            expected += crossEntropyAtZero([dot(q, i, k, i) / 0.1] + (0..<5).map { dot(q, i, queue, $0) / 0.1 })
        }
        XCTAssertEqual(Double(loss), expected / 3, accuracy: 1e-4)
    }

    func testInBatchKeysAsNegativesByHand() {
        let q = normalized([3, 4], seed: 13), k = normalized([3, 4], seed: 14)
        let loss = Contrastive.inBatch(query: q, keys: k, temperature: 0.2).item()
        var expected = 0.0
        for i in 0..<3 {
            expected += crossEntropyAtZero([dot(q, i, k, i) / 0.2] + (0..<3).filter { $0 != i }.map { dot(q, i, k, $0) / 0.2 })
        }
        XCTAssertEqual(Double(loss), expected / 3, accuracy: 1e-4)
        // An empty queue (model.queue_size 0) means exactly this.
        let empty = Tensor(shape: [0, 4], data: [])
        XCTAssertEqual(Contrastive.infoNCE(query: q, positiveKey: k, queue: empty, temperature: 0.2).item(), Float(loss), accuracy: 1e-6)
        // Gradient w.r.t. the (unnormalised) query, keys constant, vs central differences.
        var rng = RandomGenerator(seed: 15)
        let raw = Tensor.randn([3, 4], rng: &rng)
        raw.requiresGrad = true
        Contrastive.inBatch(query: raw.l2Normalized(), keys: k, temperature: 0.2).backward()
        let eps: Float = 1e-2
        for i in 0..<raw.count {
            let saved = raw.data[i]
            raw.data[i] = saved + eps; let plus = noGrad { Contrastive.inBatch(query: raw.l2Normalized(), keys: k, temperature: 0.2) }.item()
            raw.data[i] = saved - eps; let minus = noGrad { Contrastive.inBatch(query: raw.l2Normalized(), keys: k, temperature: 0.2) }.item()
            raw.data[i] = saved
            XCTAssertEqual(raw.grad!.data[i], (plus - minus) / (2 * eps), accuracy: 2e-3 + 0.02 * abs(raw.grad!.data[i]))
        }
    }

    func testSymmetricInBatchByHand() {
        let a = normalized([3, 4], seed: 4), b = normalized([3, 4], seed: 5)
        let loss = Contrastive.symmetricInBatch(a, b, temperature: 0.5).item()
        var expected = 0.0
        for i in 0..<3 {
            let row = (0..<3).map { dot(a, i, b, $0) / 0.5 }, column = (0..<3).map { dot(a, $0, b, i) / 0.5 }
            // put the positive first for the helper
            expected += crossEntropyAtZero([row[i]] + row.enumerated().filter { $0.offset != i }.map(\.element))
            expected += crossEntropyAtZero([column[i]] + column.enumerated().filter { $0.offset != i }.map(\.element))
        }
        XCTAssertEqual(Double(loss), expected / 6, accuracy: 1e-4)
    }

    func testMaCLRTermsCombineWithTheirWeightsAndUseTheKeyModalitysQueue() {
        let vq = normalized([2, 4], seed: 6), vk = normalized([2, 4], seed: 7), mq = normalized([2, 4], seed: 8)
        let mk = normalized([2, 4], seed: 9), vQueue = normalized([6, 4], seed: 10), mQueue = normalized([6, 4], seed: 11)
        let loss = MaCLRLoss(crossModalWeight: 0.5, motionIntraWeight: 0.25, temperature: 0.2)
        let t = loss(visualQuery: vq, visualKey: vk, visualQueue: vQueue, motionQuery: mq, motionKey: mk, motionQueue: mQueue)
        let lv = Contrastive.infoNCE(query: vq, positiveKey: vk, queue: vQueue, temperature: 0.2).item()
        let lvm = Contrastive.infoNCE(query: vq, positiveKey: mk, queue: mQueue, temperature: 0.2).item()
        let lmv = Contrastive.infoNCE(query: mq, positiveKey: vk, queue: vQueue, temperature: 0.2).item()
        let lm = Contrastive.infoNCE(query: mq, positiveKey: mk, queue: mQueue, temperature: 0.2).item()
        XCTAssertEqual(t.values["loss_v"]!, lv, accuracy: 1e-6)
        XCTAssertEqual(t.values["loss_v2m"]!, lvm, accuracy: 1e-6)
        XCTAssertEqual(t.values["loss_m2v"]!, lmv, accuracy: 1e-6)
        XCTAssertEqual(t.values["loss_m"]!, lm, accuracy: 1e-6)
        XCTAssertEqual(t.total.item(), lv + 0.5 * (lvm + lmv) + 0.25 * lm, accuracy: 1e-5)
        XCTAssertNotEqual(lvm, Contrastive.infoNCE(query: vq, positiveKey: mk, queue: vQueue, temperature: 0.2).item(),
                          "v->m takes its negatives from the motion queue")
        let visualOnly = loss(visualQuery: vq, visualKey: vk, visualQueue: vQueue)
        XCTAssertNil(visualOnly.visualToMotion)
        XCTAssertEqual(visualOnly.total.item(), lv, accuracy: 1e-6)
    }

    /// Gradients of every term w.r.t. the queries (keys and queues are constants) vs central differences.
    func testGradientsMatchFiniteDifferences() {
        let vk = normalized([2, 4], seed: 7), mk = normalized([2, 4], seed: 9)
        let vQueue = normalized([6, 4], seed: 10), mQueue = normalized([6, 4], seed: 11)
        let loss = MaCLRLoss(crossModalWeight: 0.7, motionIntraWeight: 0.3, temperature: 0.2)
        var rng = RandomGenerator(seed: 12)
        let rawV = Tensor.randn([2, 4], rng: &rng), rawM = Tensor.randn([2, 4], rng: &rng)
        func value(_ v: Tensor, _ m: Tensor) -> Tensor {
            loss(visualQuery: v.l2Normalized(), visualKey: vk, visualQueue: vQueue,
                 motionQuery: m.l2Normalized(), motionKey: mk, motionQueue: mQueue).total
        }
        rawV.requiresGrad = true; rawM.requiresGrad = true
        value(rawV, rawM).backward()
        let eps: Float = 1e-2
        for (x, g) in [(rawV, rawV.grad!), (rawM, rawM.grad!)] {
            for i in 0..<x.count {
                let saved = x.data[i]
                x.data[i] = saved + eps; let plus = noGrad { value(rawV, rawM) }.item()
                x.data[i] = saved - eps; let minus = noGrad { value(rawV, rawM) }.item()
                x.data[i] = saved
                XCTAssertEqual(g.data[i], (plus - minus) / (2 * eps), accuracy: 2e-3 + 0.02 * abs(g.data[i]))
            }
        }
        // symmetric in-batch: both sides receive gradient
        let a = Tensor.randn([3, 4], rng: &rng), b = Tensor.randn([3, 4], rng: &rng)
        a.requiresGrad = true; b.requiresGrad = true
        Contrastive.symmetricInBatch(a.l2Normalized(), b.l2Normalized(), temperature: 0.1).backward()
        for (x, g) in [(a, a.grad!), (b, b.grad!)] {
            for i in 0..<x.count {
                let saved = x.data[i]
                x.data[i] = saved + eps; let plus = noGrad { Contrastive.symmetricInBatch(a.l2Normalized(), b.l2Normalized(), temperature: 0.1) }.item()
                x.data[i] = saved - eps; let minus = noGrad { Contrastive.symmetricInBatch(a.l2Normalized(), b.l2Normalized(), temperature: 0.1) }.item()
                x.data[i] = saved
                XCTAssertEqual(g.data[i], (plus - minus) / (2 * eps), accuracy: 5e-3 + 0.02 * abs(g.data[i]))
            }
        }
    }
}
