import Backbones
import DataHDF5
import Foundation
import Pathways
import Tensor
import Evaluation
import Training
import Video
import TrainingTestSupport
import XCTest

final class EvaluationTests: XCTestCase {
    func features(_ rows: [[Float]], _ labels: [Int]) -> Evaluation.Features {
        Evaluation.Features(values: rows.flatMap { $0 }, dimension: rows[0].count, labels: labels, names: labels.map { "v\($0)" })
    }

    func testLinearProbeSeparatesSeparableClassesAndRanksTopFive() {
        // three classes along three axes, with noise
        var train: [[Float]] = [], trainLabels: [Int] = [], test: [[Float]] = [], testLabels: [Int] = []
        for i in 0..<60 {
            let c = i % 3
            var v: [Float] = [0.1 * Float(i % 7) - 0.3, 0.05 * Float(i % 5), -0.04 * Float(i % 3)]
            v[c] += 2
            if i < 45 { train.append(v); trainLabels.append(c) } else { test.append(v); testLabels.append(c) }
        }
        let (top1, top5) = Evaluation.linearProbe(train: features(train, trainLabels), test: features(test, testLabels),
                                                  classes: 3, l2: 1e-3, iterations: 300)
        XCTAssertEqual(top1, 1.0)
        XCTAssertEqual(top5, 1.0)
    }

    func testRetrievalRecallByHand() {
        // gallery: class 0 at +x, class 1 at +y; queries: one of each, and one class-1 query near +x
        let train = features([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], [0, 0, 1, 1])
        let test = features([[1, 0.05], [0.05, 1], [1, 0.2]], [0, 1, 1])
        let r = Evaluation.retrieval(train: train, test: test, ks: [1, 2, 3])
        XCTAssertEqual(r[0], 2.0 / 3, accuracy: 1e-9)     // the third query's nearest is class 0
        XCTAssertEqual(r[1], 2.0 / 3, accuracy: 1e-9)     // its two nearest are both class 0
        XCTAssertEqual(r[2], 1.0, accuracy: 1e-9)
    }

    /// Weighted kNN by hand: the k most cosine-similar train videos vote exp(cos / T) for their
    /// class. A class-1 query near +y has neighbours [0,1] (cos 0.995, class 1), [0.6,0.8] (0.856,
    /// class 1), [0.8,0.6] (0.677, class 0), then two class-0 ones near +x.
    func testKNNVotesByHand() {
        let train = features([[1, 0], [0.98, 0.2], [0.8, 0.6], [0, 1], [0.6, 0.8]], [0, 0, 0, 1, 1])
        let test = features([[0.1, 1], [1, 0.05]], [1, 0])
        XCTAssertEqual(Evaluation.knn(train: train, test: test, classes: 2, k: 1, temperature: 0.07), 1.0)
        XCTAssertEqual(Evaluation.knn(train: train, test: test, classes: 2, k: 3, temperature: 0.07), 1.0)
        // all five vote: with T = 0.07 the two near class-1 votes outweigh three farther class-0
        // ones; with T = 100 the weights are nearly equal and three votes beat two
        XCTAssertEqual(Evaluation.knn(train: train, test: test, classes: 2, k: 5, temperature: 0.07), 1.0)
        XCTAssertEqual(Evaluation.knn(train: train, test: test, classes: 2, k: 5, temperature: 100), 0.5)
    }

    func testTheRandomInitFloorIsTheNetworkPretrainingStartsFrom() throws {
        var firsts: [Float] = []
        for scheme in ["torchvision", "pytorch"] {
            let recipe = try tinyRecipe(dataset: URL(fileURLWithPath: "/unused"), output: URL(fileURLWithPath: "/unused"), ["model.init": scheme, "seed": 4])
            let floor = try Evaluation.loadEncoder(checkpoint: nil, encoderFile: nil, recipe: recipe)
            let start = MaCLRModel(recipe.modelConfig, seed: 4).visual.encoder
            let a = floor.namedState(prefix: "e"), b = start.namedState(prefix: "e")
            XCTAssertEqual(a.map(\.0), b.map(\.0))
            for ((name, x), (_, y)) in zip(a, b) {
                XCTAssertEqual((0..<x.count).map { x.data[$0] }, (0..<y.count).map { y.data[$0] }, "\(scheme): \(name)")
            }
            firsts.append(a[0].1.data[0])
        }
        XCTAssertNotEqual(firsts[0], firsts[1], "the two schemes draw different weights")
    }

    func testEvaluatingATrainedRunEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeTinyDataset(dir.appendingPathComponent("ds"))
        let recipe = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("run"))
        try Trainer(recipe: recipe).run { _ in }
        let net = try Evaluation.loadEncoder(checkpoint: dir.appendingPathComponent("run").path, encoderFile: nil, recipe: recipe)
        let exported = try Evaluation.loadEncoder(checkpoint: nil, encoderFile: dir.appendingPathComponent("run/encoder.safetensors").path, recipe: recipe)
        let ds = try ShardDataset(folder: dir.appendingPathComponent("ds"))
        let a = try Evaluation.run(encoder: { net.features($0) }, dataset: ds, recipe: recipe, log: { _ in })
        let b = try Evaluation.run(encoder: { exported.features($0) }, dataset: ds, recipe: recipe, log: { _ in })
        XCTAssertEqual(a, b, "the checkpoint and the exported encoder are the same network")
        XCTAssertEqual(a.trainVideos, 9); XCTAssertEqual(a.testVideos, 3)
    }
    func testTheMotionPathwayIsEvaluatedOnItsFlowInputFromTheCheckpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eval-motion-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeTinyDataset(dir.appendingPathComponent("ds"))
        let run = dir.appendingPathComponent("run")
        let recipe = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: run)
        try Trainer(recipe: recipe).run { _ in }
        let ds = try ShardDataset(folder: dir.appendingPathComponent("ds"))

        // the Motion pathway's input is the flow: the box moves 0.5 px a frame, right in class 0 and left in class 1
        let sampler = ClipSampler(dataset: ds, indices: Array(ds.entries.indices), sampling: recipe.sampling, augmentation: .none, seed: 0,
                                  batchSize: 1, withMotion: true)
        let speed = Motion.dequantize(Motion.quantize(0.5, bound: 20), bound: 20) / 20
        for i in 0..<2 {
            let clips = try sampler.evaluationClips(entry: i, count: 2, motion: true)
            XCTAssertEqual(clips.shape, [2, 4, 32, 32, 2])
            let u = clips.toArray().enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
            let rightwards = ds.entries[i].label == 0
            XCTAssertEqual(rightwards ? u.max()! : u.min()!, rightwards ? speed : -speed, accuracy: 1e-5, ds.entries[i].name)
        }

        // the checkpoint's Motion pathway; without one, the random init pretraining starts from
        let trained = try Evaluation.loadMotionPathway(checkpoint: run.path, recipe: recipe)
        let saved = try Checkpoint(path: run.path).tensors
        let trainedState = trained.namedState(prefix: "motion")
        XCTAssertGreaterThan(trainedState.count, 10)
        for (name, t) in trainedState { XCTAssertEqual(t.toArray(), saved[name]?.toArray(), name) }
        let start = try Evaluation.loadMotionPathway(checkpoint: nil, recipe: recipe).namedState(prefix: "motion")
        let pretrainingStart = MaCLRModel(recipe.modelConfig, seed: UInt64(recipe.seed)).motion!.namedState(prefix: "motion")
        XCTAssertEqual(start.map { $0.1.toArray() }, pretrainingStart.map { $0.1.toArray() })
        XCTAssertNotEqual(start[0].1.toArray(), trainedState[0].1.toArray(), "training moved the weights")

        // maclr eval --pathway motion: the probe on those features (the flow's sign decides the class)
        let report = try EncoderSelection(checkpoint: run.path, encoderFile: nil, recipePath: nil, overrides: [], dataset: nil, pathway: .motion)
            .evaluate(log: { _ in })
        let direct = try Evaluation.run(encoder: { trained.features($0) }, dataset: ds, recipe: recipe, motion: true, log: { _ in })
        XCTAssertEqual(report, direct)
        XCTAssertEqual(report.testVideos, 3)
        XCTAssertEqual(report.top1, 1.0)

        XCTAssertThrowsError(try EncoderSelection(checkpoint: nil, encoderFile: nil, recipePath: nil, overrides: ["model.motion_pathway=none"],
                                                  dataset: ds.folder.path, pathway: .motion).evaluate(log: { _ in })) { error in
            XCTAssertTrue("\(error)".contains("model.motion_pathway is none"), "\(error)")
        }
    }
}
