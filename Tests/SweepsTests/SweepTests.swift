import Foundation
import Sweeps
import Training
import XCTest

/// Sweep files: expansion of grids and variants into full recipes, and every kind of mistake
/// named before anything runs.
final class SweepTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ body: String) throws -> String {
        let url = dir.appendingPathComponent("s.yaml")
        try ("recipe: \(Self.repository.appendingPathComponent("Recipes/base.yaml").path)\noutput: \(dir.path)/out\n" + body)
            .write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testAGridExpandsToEveryCombinationTimesEverySeed() throws {
        let s = try Sweep.load(try write("""
            seeds: [3, 4]
            set: {optim.steps: 50}
            grid:
              loss.temperature: [0.05, 0.2]
              model.queue_size: [0, 128, 256]
            """), overrides: ["optim.batch_size=4"])
        XCTAssertEqual(s.variants.count, 6)
        XCTAssertEqual(s.runs.count, 12)
        XCTAssertEqual(s.variedKeys, ["loss.temperature", "model.queue_size"])
        XCTAssertEqual(s.variants[1].name, "temperature=0.05,queue_size=128")
        XCTAssertEqual(s.runs.map(\.seed), [3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4], "seeds outer")
        let run = s.runs[7]
        XCTAssertEqual(run.id, "temperature=0.05,queue_size=128/seed-4")
        XCTAssertEqual(run.recipe.seed, 4)
        XCTAssertEqual(run.recipe.loss.temperature, 0.05)
        XCTAssertEqual(run.recipe.model.queueSize, 128)
        XCTAssertEqual(run.recipe.optim.steps, 50, "the sweep's shared set")
        XCTAssertEqual(run.recipe.optim.batchSize, 4, "--set on the command line")
        XCTAssertEqual(run.recipe.train.output, "\(dir.path)/out/runs/temperature=0.05,queue_size=128/seed-4")
        // --seeds replaces the file's
        let fewer = try Sweep.load(dir.appendingPathComponent("s.yaml").path, seeds: [4])
        XCTAssertEqual(fewer.runs.map(\.seed), [4, 4, 4, 4, 4, 4])
        XCTAssertEqual(fewer.runs[1].recipe.train.output, s.runs[7].recipe.train.output, "the same run folder as the file's seed 4")
        XCTAssertThrowsError(try Sweep.load(dir.appendingPathComponent("s.yaml").path, seeds: [1, 1])) {
            XCTAssertTrue("\($0)".hasPrefix("--seeds '1,1' must be a list of distinct integers"), "\($0)")
        }
        // a baseline must be one of the variants
        XCTAssertThrowsError(try Sweep.load(try write("baseline: nothing\nvariants:\n  - name: a\n    set: {}\n  - name: b\n    set: {}\n"))) {
            XCTAssertTrue("\($0)".contains("key 'baseline' must name one of the variants (a, b), got 'nothing'"), "\($0)")
        }
        XCTAssertEqual(try Sweep.load(try write("baseline: b\nvariants:\n  - name: a\n    set: {}\n  - name: b\n    set: {}\n")).baseline, "b")
        XCTAssertEqual(s.metrics.map(\.rawValue), ["probe_top1", "retrieval_r1", "knn_top1", "final_loss"])
        // the motion test's columns, on the run's own dataset only
        let views = try Sweep.load(try write("eval: [probe, views]\ntransfer: {real: /somewhere}\n"))
        XCTAssertEqual(views.metrics.map(\.rawValue), ["probe_top1", "probe_top1_shuffled", "probe_top1_frozen", "probe_top1_reversed",
                                                         "knn_top1_shuffled", "knn_top1_frozen", "knn_top1_reversed", "probe_top1@real", "final_loss"])

        // --output: the same sweep elsewhere, every run's folder under it
        let moved = try Sweep.load(try write("variants:\n  - name: a\n  - name: b\n    set: {optim.lr: 0.001}\n"), output: "\(dir.path)/elsewhere")
        XCTAssertEqual(moved.output.path, "\(dir.path)/elsewhere")
        XCTAssertEqual(moved.runs.map(\.recipe.train.output), ["a", "b"].map { "\(dir.path)/elsewhere/runs/\($0)/seed-0" })
    }

    /// Keys bound to each other move together: base.yaml's constant rate (lr = min_lr = 3e-4)
    /// lowered in one variant, which a key-by-key check refused half-way (min_lr above the new lr).
    func testAVariantMovesBoundKeysTogether() throws {
        let s = try Sweep.load(try write("variants:\n  - name: slow\n    set: {optim.lr: 0.0001, optim.min_lr: 0.0001}\n"))
        XCTAssertEqual(s.runs[0].recipe.optim.lr, 0.0001)
        XCTAssertEqual(s.runs[0].recipe.optim.minLr, 0.0001)
        XCTAssertThrowsError(try Sweep.load(try write("variants:\n  - name: bad\n    set: {optim.lr: 0.0001}\n"))) { error in
            XCTAssertTrue("\(error)".contains("key 'optim.min_lr' must be at most optim.lr (0.0001), got '0.0003'"), "\(error)")
        }
    }

    func testMistakesAreNamedBeforeAnythingRuns() throws {
        let cases: [(String, String)] = [
            ("seed: [0]\n", "unknown sweep key 'seed' (did you mean 'seeds'?)"),
            ("grid: {loss.temprature: [0.1]}\n", "unknown key 'loss.temprature' (did you mean 'loss.temperature'?)"),
            ("variants:\n  - name: a\n    set: {optim.lr: -1}\n", "(variant 'a'): key 'optim.lr' must be a number > 0"),
            ("variants:\n  - name: a\n    sett: {optim.lr: 1}\n", "unknown key of variant 'a' 'sett' (did you mean 'set'?)"),
            ("variants:\n  - name: a\n  - name: a\n", "two variants are named 'a'"),
            ("variants:\n  - name: a/b\n", "must not contain '/'"),
            ("grid: {optim.lr: [0.1]}\nvariants:\n  - name: a\n", "give 'grid' or 'variants', not both"),
            ("seeds: [1, 1]\n", "key 'seeds' must be a list of distinct integers"),
            ("eval: [probe, linear]\n", "key 'eval' must list some of probe, retrieval, knn, finetune, views, got 'linear'"),
            ("grid: {loss.temperature: []}\n", "grid key 'loss.temperature' must have a list of values"),
        ]
        for (body, message) in cases {
            XCTAssertThrowsError(try Sweep.load(try write(body)), body) { error in
                XCTAssertTrue("\(error)".contains(message), "\(body): \(error)")
                XCTAssertFalse("\(error)".contains("\n"), "one line")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path), "nothing written")
    }

    func testTheShippedSweepsLoad() throws {
        let folder = Self.repository.appendingPathComponent("Recipes/ablations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 7)
        for f in files {
            let s = try Sweep.load(folder.appendingPathComponent(f).path)
            XCTAssertEqual(s.seeds, [0, 1, 2], f)
            XCTAssertGreaterThan(s.variants.count, 1, f)
        }
    }

    /// The paired bootstrap on outcomes whose interval is known by hand.
    func testPairedDifferencesByHand() {
        let all = [Bool](repeating: true, count: 4), none = [Bool](repeating: false, count: 4)
        // every video right for the variant, wrong for the baseline, on both seeds: +1, whatever is drawn
        let plusOne = AblationReport.pairedDifference([(all, none), (all, none)])!
        XCTAssertEqual([plusOne.mean, plusOne.low, plusOne.high], [1, 1, 1])
        // the same outcomes: 0 exactly
        let same = AblationReport.pairedDifference([([true, false, true, false], [true, false, true, false])])!
        XCTAssertEqual([same.mean, same.low, same.high], [0, 0, 0])
        // one seed, four videos: the variant gains video 0 and loses none: mean 1/4; a draw of four
        // videos holds video 0 zero to four times, so every resampled mean is a multiple of 1/4 in 0...1
        let one = AblationReport.pairedDifference([([true, true, false, false], [false, true, false, false])])!
        XCTAssertEqual(one.mean, 0.25)
        XCTAssertEqual(one.low, 0)
        XCTAssertGreaterThanOrEqual(one.high, 0.5)
        XCTAssertEqual(one.high.truncatingRemainder(dividingBy: 0.25), 0)
        // a gain on one seed and an equal loss on the other: centred on 0, both signs in the interval
        let mixed = AblationReport.pairedDifference([(all, none), (none, all)])!
        XCTAssertEqual(mixed.mean, 0)
        XCTAssertEqual(mixed.low, -1)
        XCTAssertEqual(mixed.high, 1)
        XCTAssertNil(AblationReport.pairedDifference([]))
        XCTAssertNil(AblationReport.pairedDifference([([true], [true, false])]))
    }
}
