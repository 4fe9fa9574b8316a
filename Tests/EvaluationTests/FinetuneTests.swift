import Backbones
import DataHDF5
import Evaluation
import Foundation
import Tensor
@testable import Training
import TrainingTestSupport
import XCTest

/// Fine-tuning's pieces: test views, the encoder it starts from, the classifier's test, precise
/// BN, and the figures over numbered splits.
final class FinetuneTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("finetune-unit-\(UUID().uuidString)")
        try makeTinyDataset(dir.appendingPathComponent("ds"))
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Landscape frames 48x32 whose red channel is the column: 3 crops per clip are the 32x32
    /// squares at columns 0, 8 and 16 (start, centre, end); 1 crop is the centre one.
    func testCropsPerClipSitAlongTheLongSide() throws {
        let folder = dir.appendingPathComponent("wide")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (t, h, w) = (8, 32, 48)
        let writer = try ShardWriter(path: folder.appendingPathComponent("shard-00000.h5").path,
                                     attributes: ShardAttributes(height: h, width: w, fps: 8, flowAlgorithm: "none", flowBound: 20))
        var rgb = [UInt8](repeating: 0, count: t * h * w * 3)
        for i in 0..<(t * h * w) { rgb[3 * i] = UInt8(4 * (i % w)) }
        try writer.append(PreparedVideo(name: "v", source: "wide", label: 0, frames: t, height: h, width: w, rgb: rgb, flow: nil))
        try writer.finish()
        var m = DatasetManifest(preparation: .init(size: "\(w)x\(h)", fps: 8, flowAlgorithm: "none", flowBound: 20, videosPerShard: 1))
        m.shards = [try .init(measuring: "shard-00000.h5", in: folder, videos: 1, frames: t)]
        m.classes = ["a"]; m.splits = ["test": ["v"]]; m.complete = true
        try m.save(to: folder)
        let ds = try ShardDataset(folder: folder)
        let sampling = ClipSampling(frames: 4, stride: 1, height: 32, width: 32, positiveGap: 0...1, motion: .flow)
        let sampler = ClipSampler(dataset: ds, indices: [0], sampling: sampling, augmentation: .none, seed: 0, batchSize: 1, withMotion: false)
        let views = try sampler.evaluationClips(entry: 0, count: 2, crops: 3)
        XCTAssertEqual(views.shape, [6, 4, 32, 32, 3])
        // the red value at (clip, frame 0, row 0, column 0) of each view, de-normalised to the source column
        func firstColumn(_ v: Int) -> Int {
            let red = views.data[v * 4 * 32 * 32 * 3] * 0.22803 + 0.43216
            return Int((red * 255 / 4).rounded())
        }
        XCTAssertEqual((0..<6).map(firstColumn), [0, 8, 16, 0, 8, 16])
        let centre = try sampler.evaluationClips(entry: 0, count: 1, crops: 1)
        XCTAssertEqual(centre.toArray(), Array(views.toArray()[(4 * 4 * 32 * 32 * 3)..<(5 * 4 * 32 * 32 * 3)]), "1 crop is the centre one")
    }

    /// model.init_from loads the run's visual encoder exactly; the classifier keeps its init.
    func testFineTuningStartsFromTheRunsEncoder() throws {
        let ds = dir.appendingPathComponent("ds")
        let run = dir.appendingPathComponent("run")
        try Trainer(recipe: try tinyRecipe(dataset: ds, output: run)).run { _ in }
        let recipe = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("ft"),
                                    ["loss.objective": "supervised", "model.motion_pathway": "none", "model.init_from": run.path, "model.dropout": 0.5])
        let trainer = try Trainer(recipe: recipe)
        XCTAssertTrue(trainer.notes.contains { $0.hasPrefix("visual encoder from \(run.path): ") }, "\(trainer.notes)")
        let saved = try Checkpoint(path: run.path).tensors
        var config = recipe.visualConfig
        config.classes = 2
        let probe = VideoResNet(config, seed: 0)
        try EncoderWeights.load(into: probe, from: run.path)
        var compared = 0
        for (name, tensor) in probe.namedState(prefix: "visual.encoder") where !name.contains(".fc.") {
            XCTAssertEqual(tensor.toArray(), saved[name]?.toArray(), name)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 50)
        // a contrastive recipe takes no dropout
        XCTAssertThrowsError(try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("c"), ["model.dropout": 0.5])) {
            XCTAssertTrue("\($0)".contains("key 'model.dropout' is for a classifier"), "\($0)")
        }
    }

    /// Pretraining starts from an encoder file in another library's names: the query and the
    /// momentum visual encoders both hold its weights, and the run says what it loaded.
    func testPretrainingStartsFromAnEncoderFileInPytorchvideosNames() throws {
        let ds = dir.appendingPathComponent("ds")
        let run = dir.appendingPathComponent("run-for-init")
        try Trainer(recipe: try tinyRecipe(dataset: ds, output: run)).run { _ in }
        let file = dir.appendingPathComponent("encoder-pytorchvideo.safetensors").path
        _ = try EncoderExport.trained(checkpoint: run.path, layout: .pytorchvideo, to: file)
        let recipe = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("from-file"), ["model.init_from": file])
        let trainer = try Trainer(recipe: recipe)
        let note = try XCTUnwrap(trainer.notes.first { $0.hasPrefix("visual encoder from \(file): ") })
        XCTAssertTrue(note.contains("pytorchvideo's names, ") && note.contains("every tensor of the file loaded; its momentum copy the same"), note)
        let saved = try Checkpoint(path: run.path).tensors
        let state = Dictionary(uniqueKeysWithValues: trainer.learner.modules.flatMap { $0.1.namedState(prefix: $0.0) })
        var compared = 0
        for (name, tensor) in saved where name.hasPrefix("visual.encoder.") {
            XCTAssertEqual(state[name]?.toArray(), tensor.toArray(), name)
            XCTAssertEqual(state["visual_key" + name.dropFirst(6)]?.toArray(), tensor.toArray(), "momentum copy of \(name)")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 50)
        XCTAssertThrowsError(try Trainer(recipe: try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("wide"), ["model.init_from": file, "model.width": 0.5]))) {
            XCTAssertTrue("\($0)".contains("holds r2plus1d_18 width 0.0625") && "\($0)".contains("the recipe has model.arch r2plus1d_18, model.width 0.5"), "\($0)")
        }
    }

    /// The classifier's test averages the softmax over the views; precise BN replaces the
    /// moving averages by the plain average over the batches, whatever they were before.
    func testTheClassifierAveragesItsViewsAndPreciseBNIsAPlainAverage() throws {
        let ds = try ShardDataset(folder: dir.appendingPathComponent("ds"))
        let recipe = try tinyRecipe(dataset: ds.folder, output: dir.appendingPathComponent("x"),
                                    ["eval.clips_per_video": 2, "eval.crops_per_clip": 3, "eval.split_test": "test"])
        var config = recipe.visualConfig
        config.classes = 2
        let net = VideoResNet(config, seed: 3)
        net.initialize(.pytorch, seed: 3)
        let report = try Evaluation.classify(network: net, dataset: ds, recipe: recipe) { _ in }
        XCTAssertEqual(report.views, 6)
        // by hand: the averaged scores' arg-max per test video
        let sampler = ClipSampler(dataset: ds, indices: [], sampling: recipe.sampling, augmentation: .none, seed: 0, batchSize: 1, withMotion: false)
        var correct = 0
        let test = try ds.indices(split: "test")
        for i in test {
            let views = try sampler.evaluationClips(entry: i, count: 2, crops: 3)
            let scores: [Float] = noGrad { net(views).softmax() }.toArray()
            var mean: [Float] = [0, 0]
            for v in 0..<6 { for c in 0..<2 { mean[c] += scores[v * 2 + c] / 6 } }
            let predicted = mean[1] > mean[0] ? 1 : 0
            if predicted == ds.entries[i].label { correct += 1 }
        }
        XCTAssertEqual(report.top1, Double(correct) / Double(test.count), accuracy: 1e-12)

        let norms = net.namedModules().compactMap { $0.1 as? BatchNorm }
        try Evaluation.recomputeBatchNorm(network: net, dataset: ds, recipe: recipe, batches: 2)
        let once = norms[0].runningMean.toArray()
        for bn in norms { bn.runningMean.assign(Tensor.ones(bn.runningMean.shape)) }
        try Evaluation.recomputeBatchNorm(network: net, dataset: ds, recipe: recipe, batches: 2)
        XCTAssertEqual(norms[0].runningMean.toArray(), once, "independent of the statistics before")
        XCTAssertEqual(norms.map(\.momentum), [Float](repeating: 0.1, count: norms.count), "momentum restored")
        XCTAssertNotEqual(once, [Float](repeating: 0, count: once.count))
    }

    func testNumberedSplitsAndTheirStatistics() throws {
        let base = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("out"))
        let r = try SplitAverage.recipe(base, split: 2)
        XCTAssertEqual([r.data.splitName, r.eval.splitTrain, r.eval.splitTest], ["train2", "train2", "test2"])
        XCTAssertEqual(r.train.output, dir.appendingPathComponent("out/split-2").path)
        let (mean, std) = SplitAverage.meanAndStandardDeviation([0.5, 0.7, 0.6])
        XCTAssertEqual(mean, 0.6, accuracy: 1e-12)
        XCTAssertEqual(std, 0.1, accuracy: 1e-12)
        XCTAssertEqual(SplitAverage.summary([["top1": 0.5], ["top1": 0.7], ["top1": 0.6]], metrics: ["top1"]), "over 3 splits: top1 60.0 ± 10.0 %")
        XCTAssertNil(SplitAverage.summary([["top1": 0.5]], metrics: ["top1"]))
    }
}

/// The kNN monitor during pretraining: figures at every `train.monitor_every` steps and at the
/// last, in metrics.jsonl; and a run with it takes the very steps of a run without it.
final class MonitorTests: XCTestCase {
    func testTheMonitorMeasuresWithoutChangingTheRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("monitor-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeTinyDataset(dir.appendingPathComponent("ds"))
        let ds = dir.appendingPathComponent("ds")
        let plain = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("plain"), ["optim.steps": 5])
        let watched = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("watched"),
                                     ["optim.steps": 5, "train.monitor_every": 2, "train.monitor_videos": 4, "train.log_every": 100])
        XCTAssertNil(try KNNMonitor(plain))
        _ = try pretrainAndEvaluate(plain, fresh: true, evaluate: false) { _ in }
        var progress = ""
        _ = try pretrainAndEvaluate(watched, fresh: true, evaluate: false) { progress += $0 }
        let lines = RunFolder(dir.appendingPathComponent("watched")).readMetrics()
        XCTAssertEqual(lines.filter { !$0.monitor.isEmpty }.map(\.step), [2, 4, 5], "every 2 steps and the last")
        for line in lines where !line.monitor.isEmpty {
            let knn = try XCTUnwrap(line.monitor["knn_top1"])
            // the tiny set's test split has 3 videos: each right or wrong
            XCTAssertEqual((knn * 3).rounded(), knn * 3, accuracy: 1e-9, "\(knn)")
        }
        XCTAssertTrue(progress.contains("knn_top1 "), progress)
        let plainLosses = RunFolder(dir.appendingPathComponent("plain")).readMetrics().map(\.values)
        let watchedLosses = Dictionary(uniqueKeysWithValues: lines.map { ($0.step, $0.values) })
        for (i, values) in plainLosses.enumerated() where watchedLosses[i + 1] != nil {
            XCTAssertEqual(watchedLosses[i + 1], values, "step \(i + 1)")
        }
        // a metrics line reads back with its monitor figures
        let line = StepMetrics(step: 3, values: ["loss": 1.5], lr: 0.1, clipsPerSecond: 2, elapsedSeconds: 1, dataWait: 0, monitor: ["knn_top1": 0.25])
        let text = String(decoding: try JSONEncoder.compactSorted.encode(line), as: UTF8.self)
        XCTAssertTrue(text.contains("\"monitor/knn_top1\":0.25"), text)
        XCTAssertEqual(try JSONDecoder().decode(StepMetrics.self, from: Data(text.utf8)), line)
    }
}
