import DataHDF5
import Foundation
import Tensor
@testable import Training
import TrainingTestSupport
import Video
import XCTest

final class TrainerTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
        try makeTinyDataset(dir.appendingPathComponent("ds"))
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testAKilledAndResumedRunGivesTheSameLosses() throws {
        let whole = try Trainer(recipe: try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("whole")))
        let reference = try whole.run { _ in }.map { $0.values }
        XCTAssertEqual(reference.count, 6)
        XCTAssertNotNil(reference[0]["loss_v2m"])

        let recipe = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("split"))
        let first = try Trainer(recipe: recipe)
        _ = try first.run(stopAfter: 3) { _ in }            // as if killed right after the step-3 checkpoint
        let second = try Trainer(recipe: recipe)            // a new process: resumes from the run folder
        XCTAssertEqual(second.step, 3)
        XCTAssertNotNil(second.resumedFrom)
        let rest = try second.run { _ in }.map { $0.values }
        XCTAssertEqual(rest.count, 3)
        for (a, b) in zip(rest, reference.suffix(3)) {
            for (k, v) in b { XCTAssertEqual(a[k]!, v, accuracy: 1e-5 * max(1, abs(v)), "resumed \(k)") }
        }
        // metrics.jsonl holds each step once
        let lines = try String(contentsOf: dir.appendingPathComponent("split/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 6)
        // every line says how much of the run the step waited for data, a share in [0, 1]
        for line in lines {
            let d = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let wait = try XCTUnwrap(d["data_wait"] as? Double)
            XCTAssertTrue((0...1).contains(wait), "\(wait)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("split/encoder.safetensors").path))
        // TensorBoard events beside metrics.jsonl hold the same losses, step by step
        let folder = dir.appendingPathComponent("whole")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let events = try RunOutputTests.readEvents(folder.appendingPathComponent(files[0])).filter { $0.fileVersion == nil }
        XCTAssertEqual(events.map(\.step), Array(1...6))
        for (event, values) in zip(events, reference) {
            for (k, v) in values { XCTAssertEqual(event.scalars[k], v, "step \(event.step) \(k)") }
            XCTAssertNotNil(event.scalars["lr"])
        }
    }

    /// A queue over half the training split holds other clips of a query's own video: warned, naming the key.
    func testAQueueLongerThanHalfTheTrainingVideosIsWarnedAbout() throws {
        let ds = dir.appendingPathComponent("ds")
        let long = try Trainer(recipe: try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("q16"), ["model.queue_size": 16]))
        XCTAssertEqual(long.warnings.count, 1)
        XCTAssertTrue(long.warnings[0].contains("model.queue_size 16 is more than half of the 9 training videos"), long.warnings[0])
        XCTAssertTrue(long.warnings[0].contains("use at most 4"), long.warnings[0])
        let short = try Trainer(recipe: try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("q4"), ["model.queue_size": 4]))
        XCTAssertEqual(short.warnings, [])
    }

    /// model.queue_size 0 (in-batch negatives) trains, checkpoints its empty queues and resumes.
    func testInBatchNegativesTrainCheckpointAndResume() throws {
        let recipe = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("inbatch"), ["model.queue_size": 0])
        let first = try Trainer(recipe: recipe)
        let losses = try first.run(stopAfter: 3) { _ in }.map { $0.values }
        // Four candidates per query and logits within +-1/temperature: each term is at most
        // log 4 + 2 / 0.1 (a queue of 16 would allow log 17 + 20).
        for term in ["loss_v", "loss_v2m", "loss_m2v"] {
            XCTAssertLessThanOrEqual(losses[0][term]!, Float(Foundation.log(4.0)) + 20, term)
        }
        let second = try Trainer(recipe: recipe)
        XCTAssertEqual(second.step, 3)
        let rest = try second.run { _ in }.map { $0.values }
        XCTAssertEqual(rest.count, 3)
        // The resumed steps give the losses of a run that was never stopped.
        let whole = try Trainer(recipe: try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("inbatch-whole"),
                                                   ["model.queue_size": 0])).run { _ in }.map { $0.values }
        for (a, b) in zip(losses + rest, whole) {
            for (k, v) in b { XCTAssertEqual(a[k]!, v, accuracy: 1e-5 * max(1, abs(v)), "in-batch \(k)") }
        }
    }

    /// The newest checkpoint truncated, or one byte of its tensor data flipped: the resume names
    /// it, falls back to the checkpoint before it, and ends with an uninterrupted run's losses.
    func testACorruptNewestCheckpointFallsBackToThePreviousOne() throws {
        let ds = dir.appendingPathComponent("ds")
        let every: [String: AnyHashable] = ["train.checkpoint_every": 2]
        let reference = try Trainer(recipe: try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("whole"), every)).run { _ in }.map { $0.values }
        for damage in ["truncated", "flipped"] {
            let recipe = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent(damage), every)
            _ = try Trainer(recipe: recipe).run(stopAfter: 4) { _ in }
            let state = dir.appendingPathComponent("\(damage)/checkpoints/step-0000004/state.safetensors")
            var bytes = try Data(contentsOf: state)
            if damage == "truncated" { bytes = bytes.prefix(bytes.count / 2) } else { bytes[bytes.count - 101] ^= 0x10 }
            try bytes.write(to: state)
            let resumed = try Trainer(recipe: recipe)
            XCTAssertEqual(resumed.step, 2, damage)
            XCTAssertEqual(resumed.resumedFrom?.lastPathComponent, "step-0000002", damage)
            let named = resumed.warnings.filter { $0.contains("is corrupt") }
            XCTAssertEqual(named.count, 1, damage)
            XCTAssertTrue(named.first?.contains("step-0000004 is corrupt") ?? false, "\(named)")
            XCTAssertTrue(named.first?.contains(damage == "truncated" ? "truncated" : "fails its checksum") ?? false, "\(named)")
            let rest = try resumed.run { _ in }.map { $0.values }
            XCTAssertEqual(rest.count, 4)
            for (a, b) in zip(rest, reference.suffix(4)) {
                for (k, v) in b { XCTAssertEqual(a[k]!, v, accuracy: 1e-5 * max(1, abs(v)), "\(damage): resumed \(k)") }
            }
        }
        // every checkpoint corrupt: one clear error naming the folder
        let recipe = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("all"), every)
        _ = try Trainer(recipe: recipe).run(stopAfter: 4) { _ in }
        for step in ["step-0000002", "step-0000004"] {
            try Data("{".utf8).write(to: dir.appendingPathComponent("all/checkpoints/\(step)/meta.json"))
        }
        XCTAssertThrowsError(try Trainer(recipe: recipe)) {
            XCTAssertTrue("\($0)".contains("no checkpoint verifies"), "\($0)")
        }
    }

    /// A shard is checked against the manifest before training: once hashed it is remembered
    /// (.verified.json), and a byte flipped afterwards (a new modification time) is refused.
    func testAShardWithAFlippedByteIsRefusedBeforeTraining() throws {
        let ds = dir.appendingPathComponent("ds")
        let recipe = try tinyRecipe(dataset: ds, output: dir.appendingPathComponent("run"))
        _ = try Trainer(recipe: recipe)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ds.appendingPathComponent(".verified.json").path))
        let shard = ds.appendingPathComponent("shard-00000.h5")
        var bytes = try Data(contentsOf: shard)
        bytes[bytes.count / 2] ^= 0x01
        usleep(20_000)
        try bytes.write(to: shard)
        XCTAssertThrowsError(try Trainer(recipe: recipe)) {
            XCTAssertTrue("\($0)".contains("shard-00000.h5: checksum") && "\($0)".contains("the shard is corrupt"), "\($0)")
        }
    }

    func testResumingWithAnotherRecipeIsRefusedNamingTheKey() throws {
        let out = dir.appendingPathComponent("run")
        _ = try Trainer(recipe: try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: out)).run(stopAfter: 3) { _ in }
        XCTAssertThrowsError(try Trainer(recipe: try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: out, ["optim.lr": 0.1]))) {
            XCTAssertTrue("\($0)".contains("'optim.lr' was 0.05, now 0.1"), "\($0)")
        }
    }

    func testNonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        let out = dir.appendingPathComponent("nan")
        let t = try Trainer(recipe: try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: out,
                                               ["optim.lr": 1e30, "optim.warmup_steps": 0, "train.checkpoint_every": 1]))
        XCTAssertThrowsError(try t.run { _ in }) { error in
            XCTAssertTrue("\(error)".contains("loss is not finite"), "\(error)")
            XCTAssertTrue("\(error)".contains("the last good checkpoint is \(out.path)/checkpoints/step-"), "\(error)")
        }
        let kept = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("checkpoints").path).filter { $0.hasPrefix("step-") }
        XCTAssertFalse(kept.isEmpty)
        XCTAssertLessThan(t.step, 6)
    }
}
