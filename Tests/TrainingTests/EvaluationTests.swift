import Backbones
import DataHDF5
import Foundation
import Pathways
import Tensor
import Training
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
}
