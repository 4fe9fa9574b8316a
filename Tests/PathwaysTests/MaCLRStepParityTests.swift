import Backbones
import Foundation
import Losses
import Pathways
import Tensor
import XCTest

/// Two whole MaCLR training steps against the PyTorch mirror that trains docs/results.md's mirror rows
/// (benchmarks/torch_recipe.py): the same weights, batches and key shuffles
/// (scripts/make_maclr_step_fixture.py) through MaCLRModel, AdamW and the momentum update. Every
/// loss term, every gradient of the first step, and every weight, BN statistic and queue row
/// after the second step is compared.
final class MaCLRStepParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// max |ours - theirs| / max |theirs|
    func relativeError(_ ours: Tensor, _ theirs: Tensor) -> Float {
        XCTAssertEqual(ours.count, theirs.count)
        let scale = max(theirs.toArray().map(abs).max() ?? 0, 1e-12)
        return zip(ours.toArray(), theirs.toArray()).map { abs($0 - $1) }.max()! / scale
    }

    func config(queueSize: Int) -> MaCLRModel.Config {
        var c = MaCLRModel.Config(visual: VideoResNetConfig(kind: .r2plus1d18, width: 0.0625, blocksPerStage: [1, 1, 1, 1]),
                                  motion: .frames(FrameResNetConfig(width: 0.0625, blocksPerStage: [1, 1, 1, 1], inputChannels: 2)),
                                  weightInit: .torchvision, headHidden: 32, embedding: 16, queueSize: queueSize, momentum: 0.9,
                                  keyBatchNorm: .shuffledSubBatches, loss: MaCLRLoss(crossModalWeight: 0.7, motionIntraWeight: 0.5, temperature: 0.1))
        c.keySubBatches = 2
        return c
    }

    /// Tensors of `fixture` under `prefix`, the prefix removed.
    func section(_ fixture: [String: Tensor], _ prefix: String) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: fixture.compactMap { k, v in k.hasPrefix(prefix) ? (String(k.dropFirst(prefix.count)), v) : nil })
    }

    /// Gradients of a pathway's parameters by torchvision-layout name.
    func gradients(_ pathway: Pathway) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (prefix, m) in pathway.namedModules() {
            for (name, t, _) in m.ownParameters {
                guard let g = t.grad else { continue }
                out[prefix.isEmpty ? name : prefix + "." + name] = (m as? Conv3d)?.toTorchLayout(g) ?? g
            }
        }
        return out
    }

    func compare(_ ours: [String: Tensor], _ theirs: [String: Tensor], _ what: String, tolerance: Float) {
        XCTAssertEqual(Set(ours.keys), Set(theirs.keys), "\(what): names")
        var worst: (Float, String) = (0, "")
        for (name, expected) in theirs {
            guard let mine = ours[name] else { continue }
            let e = relativeError(mine, expected)
            if e > worst.0 { worst = (e, name) }
            XCTAssertLessThan(e, tolerance, "\(what): \(name)")
        }
        print("\(what): \(theirs.count) tensors, worst relative error \(worst.0) at \(worst.1)")
    }

    func stateDict(_ m: Module) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: m.torchStateDict().compactMap { k, v in
            if case .float32(let t) = v { return (k, t) } else { return nil }
        })
    }

    func checkTwoSteps(_ file: String, queueSize: Int) throws {
        let (fixture, meta) = try SafeTensors.read(Self.fixtures.appendingPathComponent(file))
        let model = MaCLRModel(config(queueSize: queueSize), seed: 99)
        let noCounters = { (s: [String: Tensor]) in s.filter { !$0.key.hasSuffix("num_batches_tracked") } }
        try model.visual.loadTorchStateDict(section(fixture, "init.visual."), source: file)
        try model.motion!.loadTorchStateDict(section(fixture, "init.motion."), source: file)
        model.visualKey.copyState(from: model.visual)
        model.motionKey!.copyState(from: model.motion!)
        if queueSize > 0 {
            model.visualQueue.restore(keys: fixture["init.queue.visual"]!, pointer: 0)
            model.motionQueue!.restore(keys: fixture["init.queue.motion"]!, pointer: 0)
        }
        let optimizer = AdamW(model.parameters(), learningRate: 0, weightDecay: 0.1)
        var rng = RandomGenerator(seed: UInt64(meta["order_seed"]!)!)
        for step in 1...2 {
            let input = { (name: String) in fixture["step\(step).\(name)"]!.permute([0, 2, 3, 4, 1]) }
            optimizer.learningRate = fixture["step\(step).lr"]!.item()
            optimizer.zeroGrad()
            let terms = model.losses(rgbA: input("rgbA"), rgbB: input("rgbB"), motionA: input("flowA"), motionB: input("flowB"), rng: &rng)
            for (name, value) in terms.values {
                let expected = fixture["step\(step).\(name)"]!.item()
                XCTAssertEqual(value, expected, accuracy: 1e-4 * max(1, abs(expected)), "\(file) step \(step): \(name)")
            }
            terms.total.backward()
            if step == 1 {
                compare(gradients(model.visual), section(fixture, "step1.grad.visual."), "\(file) step 1 visual gradients", tolerance: 2e-3)
                compare(gradients(model.motion!), section(fixture, "step1.grad.motion."), "\(file) step 1 motion gradients", tolerance: 2e-3)
            }
            optimizer.step()
            model.afterStep()
        }
        let pathways: [(String, Pathway)] = [("visual", model.visual), ("motion", model.motion!),
                                             ("visual_key", model.visualKey), ("motion_key", model.motionKey!)]
        for (name, pathway) in pathways {
            compare(noCounters(stateDict(pathway)), noCounters(section(fixture, "after.\(name).")), "\(file) \(name) after 2 steps", tolerance: 1e-3)
        }
        if queueSize > 0 {
            XCTAssertLessThan(relativeError(model.visualQueue.keys, fixture["after.queue.visual"]!), 1e-3, "\(file): visual queue")
            XCTAssertLessThan(relativeError(model.motionQueue!.keys, fixture["after.queue.motion"]!), 1e-3, "\(file): motion queue")
        }
    }

    func testInBatchNegativesStepsMatchPyTorch() throws {
        try checkTwoSteps("maclr_step_inbatch.safetensors", queueSize: 0)
    }

    func testQueueStepsMatchPyTorch() throws {
        try checkTwoSteps("maclr_step_queue.safetensors", queueSize: 8)
    }
}
