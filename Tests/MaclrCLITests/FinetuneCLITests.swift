import Foundation
import XCTest

/// `maclr finetune` through the binary: from a pretraining run or from scratch, the test's
/// figures in finetune.json, a SIGKILLed fine-tune that resumes to the same losses, and the
/// mistakes a user makes named in one line.
final class FinetuneCLITests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("finetune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    override class func tearDown() { TinyDataset.remove() }

    static let recipes = ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes")

    /// Small sizes for every run of these tests.
    func small(_ output: URL, steps: Int) throws -> [String] {
        ["--set", "data.dataset=\(try TinyDataset.url().path)", "--set", "train.output=\(output.path)", "--set", "optim.steps=\(steps)",
         "--set", "optim.warmup_steps=2", "--set", "optim.batch_size=4", "--set", "data.crop=16", "--set", "data.clip_frames=4",
         "--set", "train.log_every=1", "--set", "eval.clips_per_video=2", "--threads", "1"]
    }

    func pretrainedRun() throws -> URL {
        let run = dir.appendingPathComponent("pretrained")
        let r = try runMaclr(["pretrain", Self.recipes.appendingPathComponent("quickstart.yaml").path, "--set", "model.head_hidden=16"]
                             + (try small(run, steps: 3)))
        XCTAssertEqual(r.status, 0, r.err)
        return run
    }

    func losses(_ run: URL) throws -> [Double] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double)
        }
    }

    func testFinetuneFromARunAndFromScratchWritesTheTestedFigures() throws {
        let run = try pretrainedRun()
        let finetuned = dir.appendingPathComponent("ft")
        let r = try runMaclr(["finetune", Self.recipes.appendingPathComponent("finetune.yaml").path, "--from", run.path] + (try small(finetuned, steps: 4)))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("visual encoder from \(run.path): "), r.err)
        XCTAssertTrue(r.out.contains("fine-tuned: top-1"), r.out)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: finetuned.appendingPathComponent("finetune.json"))) as? [String: Any])
        XCTAssertEqual(report["views"] as? Int, 6, "2 clips x 3 crops (Recipes/finetune.yaml)")
        XCTAssertEqual(report["classes"] as? Int, 4)
        XCTAssertEqual(try losses(finetuned).count, 4)
        let scratch = try runMaclr(["finetune", Self.recipes.appendingPathComponent("finetune.yaml").path, "--scratch"]
                                   + (try small(dir.appendingPathComponent("scratch"), steps: 2)))
        XCTAssertEqual(scratch.status, 0, scratch.err)
        XCTAssertFalse(scratch.err.contains("visual encoder from"), scratch.err)
    }

    func testAKilledFinetuneResumesToTheSameLosses() throws {
        let run = try pretrainedRun()
        let recipe = Self.recipes.appendingPathComponent("finetune.yaml").path
        let whole = dir.appendingPathComponent("whole"), killed = dir.appendingPathComponent("killed")
        let args = { (out: URL) in ["finetune", recipe, "--from", run.path, "--set", "train.checkpoint_every=3"] + (try self.small(out, steps: 30)) }
        XCTAssertEqual(try runMaclr(try args(whole)).status, 0)
        let killedMidway = try killMaclr(try args(killed), whenExists: killed.appendingPathComponent("checkpoints/step-0000003/meta.json").path)
        XCTAssertTrue(killedMidway, "killed before it finished")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("finetune.json").path))
        let rerun = try runMaclr(try args(killed))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertTrue(rerun.err.contains("resuming from"), rerun.err)
        XCTAssertEqual(try losses(killed), try losses(whole), "dropout, batches and weights continue exactly")
        XCTAssertEqual(try Data(contentsOf: killed.appendingPathComponent("finetune.json")).count > 0, true)
    }

    func testMistakesAreNamedInOneLine() throws {
        let finetune = Self.recipes.appendingPathComponent("finetune.yaml").path
        let out = dir.appendingPathComponent("never")
        let cases: [([String], String)] = [
            (["finetune", finetune, "--from", dir.appendingPathComponent("nothing").path] + (try small(out, steps: 2)),
             "model.init_from \(dir.appendingPathComponent("nothing").path): no such run folder, checkpoint folder or encoder file"),
            (["finetune", Self.recipes.appendingPathComponent("quickstart.yaml").path] + (try small(out, steps: 2)),
             "fine-tuning trains a classifier: it needs loss.objective: supervised"),
            (["finetune", finetune, "--from", "x", "--scratch"], "give --from or --scratch, not both"),
            (["finetune", finetune, "--splits", "1,1"], "--splits '1,1': expected distinct split numbers"),
        ]
        for (args, message) in cases {
            let r = try runMaclr(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains(message), "\(args): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").filter { $0.hasPrefix("Error") }.count, 1, r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(args) wrote the run folder")
        }
        // an encoder of another width is named with the keys that set it
        let encoder = dir.appendingPathComponent("wide.safetensors")
        XCTAssertEqual(try runMaclr(["export", "--arch", "r2plus1d_18", "--width", "0.5", "--output", encoder.path]).status, 0)
        let r = try runMaclr(["finetune", finetune, "--from", encoder.path] + (try small(out, steps: 2)))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("\(encoder.path) holds r2plus1d_18 width 0.5, blocks [2, 2, 2, 2], 3 input channels (torchvision's names); the recipe has model.arch r2plus1d_18, model.width 0.25, model.blocks [1, 1, 1, 1]"), r.err)
    }
}
