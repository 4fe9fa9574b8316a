import Foundation
import XCTest

/// `maclr ablate` end to end on a tiny sweep (two variants x two seeds, seconds each): the tables
/// hold the runs' own figures, a rerun skips, a SIGKILLed sweep resumes to the same table, a
/// failing variant is listed while the others complete, and two shards in two processes on one
/// folder give the same table as one process.
final class AblateTests: XCTestCase {
    static let repository = ReadmeAndRecipeTests.repository
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ablate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    override class func tearDown() { TinyDataset.remove() }

    func tinyDataset() throws -> URL { try TinyDataset.url() }

    /// A sweep file in the scratch folder; its runs are a few steps of a tiny model.
    func sweepFile(_ name: String, variants: String, seeds: String = "[0, 1]", eval: String = "[probe, retrieval, knn]",
                   extra: String = "") throws -> URL {
        let text = """
            recipe: \(Self.repository.appendingPathComponent("Recipes/base.yaml").path)
            output: \(dir.appendingPathComponent(name).path)
            seeds: \(seeds)
            eval: \(eval)
            \(extra)
            set:
              data.dataset: \(try tinyDataset().path)
              data.crop: 16
              data.clip_frames: 4
              optim.batch_size: 4
              optim.steps: 6
              optim.warmup_steps: 2
              train.checkpoint_every: 2
              train.log_every: 1
              model.head_hidden: 16
              eval.probe_iterations: 20
              eval.clips_per_video: 1
            variants:
            \(variants)
            """
        let url = dir.appendingPathComponent("\(name).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    static let twoVariants = """
          - name: visual-only
            set: {model.motion_pathway: none}
          - name: maclr
            set: {loss.cross_modal_weight: 1.0}
        """

    func ablate(_ sweep: URL, _ extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try runMaclr(["ablate", sweep.path, "--threads", "1"] + extra)
    }

    /// The table rows of results.md and results.csv without the run times: what must agree
    /// between two sweeps of the same runs.
    func tables(_ output: URL) throws -> (markdown: [String], csv: [String]) {
        let md = try String(contentsOf: output.appendingPathComponent("results.md"), encoding: .utf8)
        let csv = try String(contentsOf: output.appendingPathComponent("results.csv"), encoding: .utf8)
        let header = csv.split(separator: "\n").first!.split(separator: ",").map(String.init)
        let seconds = header.firstIndex(of: "seconds")!
        return (md.split(separator: "\n").filter { $0.hasPrefix("|") }.map(String.init),
                csv.split(separator: "\n").map { line in
                    var fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    fields.remove(at: seconds)
                    return fields.joined(separator: ",")
                })
    }

    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as! [String: Any]
    }

    /// eval: [..., finetune] and a transfer: dataset: every run's encoder fine-tuned on its own
    /// dataset, probed and fine-tuned on the transfer one, each figure equal to the run's own
    /// files, a group of columns per dataset in the tables.
    func testFineTuningAndTransferColumns() throws {
        let finetune = dir.appendingPathComponent("ft.yaml")
        try """
            extends: \(Self.repository.appendingPathComponent("Recipes/finetune.yaml").path)
            optim: {steps: 3, warmup_steps: 1, batch_size: 4}
            eval: {clips_per_video: 1, crops_per_clip: 2}
            """.write(to: finetune, atomically: true, encoding: .utf8)
        let sweep = try sweepFile("transfer", variants: "  - name: maclr\n    set: {loss.cross_modal_weight: 1.0}", seeds: "[0]",
                                  eval: "[probe, knn, finetune]",
                                  extra: "transfer: {again: \(try tinyDataset().path)}\nfinetune: \(finetune.path)")
        let r = try ablate(sweep)
        XCTAssertEqual(r.status, 0, r.err)
        let run = dir.appendingPathComponent("transfer/runs/maclr/seed-0")
        let result = try json(run.appendingPathComponent("result.json"))["metrics"] as! [String: Double]
        let tuned = try json(run.appendingPathComponent("finetune/finetune.json")), tunedThere = try json(run.appendingPathComponent("finetune-again/finetune.json"))
        XCTAssertEqual(result["finetune_top1"], tuned["top1"] as? Double)
        XCTAssertEqual(result["finetune_top1@again"], tunedThere["top1"] as? Double)
        XCTAssertEqual(tuned["views"] as? Int, 2)
        // the transfer dataset is the same data: the probe there equals the probe at home
        XCTAssertEqual(result["probe_top1@again"], result["probe_top1"])
        let md = try String(contentsOf: dir.appendingPathComponent("transfer/results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| variant | seeds | probe top-1 % | kNN top-1 % | fine-tuned top-1 % | probe top-1 % (again) | kNN top-1 % (again) | fine-tuned top-1 % (again) | final loss |"), md)
        // a finetune key without finetune in eval is named
        let bad = try sweepFile("bad", variants: Self.twoVariants, extra: "finetune: \(finetune.path)")
        let b = try ablate(bad)
        XCTAssertNotEqual(b.status, 0)
        XCTAssertTrue(b.err.contains("key 'finetune' names a fine-tuning recipe, but 'eval' does not list finetune"), b.err)
    }

    /// eval: [views]: the motion test's columns for every run and for the floor, each figure the
    /// one its views report holds, the floor's kept beside its evaluation.
    func testTheMotionTestColumnsCoverTheRunsAndTheFloor() throws {
        let sweep = try sweepFile("views", variants: "  - name: maclr\n    set: {loss.cross_modal_weight: 1.0}", seeds: "[0]",
                                  eval: "[probe, knn, views]")
        let r = try ablate(sweep)
        XCTAssertEqual(r.status, 0, r.err)
        let out = dir.appendingPathComponent("views")
        let result = try json(out.appendingPathComponent("runs/maclr/seed-0/result.json"))["metrics"] as! [String: Double]
        for key in ["probe_top1_shuffled", "probe_top1_frozen", "probe_top1_reversed", "knn_top1_shuffled", "knn_top1_frozen", "knn_top1_reversed"] {
            XCTAssertNotNil(result[key], key)
        }
        let floorViews = try json(out.appendingPathComponent("floor/seed-0-views.json"))["views"] as! [String: [String: Any]]
        let shuffled = try XCTUnwrap(floorViews["shuffled"]?["top1"] as? Double)
        let md = try String(contentsOf: out.appendingPathComponent("results.md"), encoding: .utf8)
        let floorRow = try XCTUnwrap(md.split(separator: "\n").first { $0.hasPrefix("| random init (floor) |") })
        // columns: variant, seeds, probe, kNN, then the views: probe shuffled first
        let cells = floorRow.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(cells[4], String(format: "%.1f ± 0.0", 100 * shuffled), String(floorRow))
    }

    func testTheTableHoldsTheRunsOwnFiguresAndARerunSkipsEveryRun() throws {
        let sweep = try sweepFile("sweep", variants: Self.twoVariants, extra: "baseline: visual-only")
        let out = dir.appendingPathComponent("sweep")
        let first = try ablate(sweep)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.out.contains("4 runs completed"), first.out)

        let results = try json(out.appendingPathComponent("results.json"))
        let runs = results["runs"] as! [[String: Any]]
        XCTAssertEqual(runs.count, 4)
        var probeByVariant: [String: [Double]] = [:]
        for run in runs {
            let variant = run["variant"] as! String, seed = run["seed"] as! Int
            let folder = out.appendingPathComponent("runs/\(variant)/seed-\(seed)")
            let metrics = run["metrics"] as! [String: Double]
            let eval = try json(folder.appendingPathComponent("eval.json"))
            XCTAssertEqual(metrics["probe_top1"], eval["top1"] as? Double, "\(variant) \(seed)")
            XCTAssertEqual(metrics["retrieval_r1"], eval["recallAt1"] as? Double, "\(variant) \(seed)")
            XCTAssertEqual(metrics["knn_top1"], eval["knnTop1"] as? Double, "\(variant) \(seed)")
            let lastLine = try String(contentsOf: folder.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").last!
            let last = try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as! [String: Any]
            XCTAssertEqual(last["step"] as? Int, 6)
            XCTAssertEqual(metrics["final_loss"], last["loss"] as? Double, "\(variant) \(seed)")
            // each run trained its own recipe: the variant's keys and the seed
            let recipe = try json(folder.appendingPathComponent("checkpoints/step-0000006/recipe.json"))
            XCTAssertEqual(recipe["seed"] as? Int, seed)
            XCTAssertEqual(recipe["model.motion_pathway"] as? String, variant == "visual-only" ? "none" : "frames")
            probeByVariant[variant, default: []].append(metrics["probe_top1"]!)
        }
        // the markdown row: mean ± half the range of the runs' probe, in %
        let md = try String(contentsOf: out.appendingPathComponent("results.md"), encoding: .utf8)
        for (variant, values) in probeByVariant {
            let cell = String(format: "%.1f ± %.1f", 100 * values.reduce(0, +) / 2, 100 * (values.max()! - values.min()!) / 2)
            let row = md.split(separator: "\n").first { $0.hasPrefix("| \(variant) |") || $0.hasPrefix("| \(variant) (baseline) |") }
            XCTAssertNotNil(row, md)
            XCTAssertTrue(row!.contains(cell), "\(row!) lacks \(cell)")
        }
        // the random-init floor, evaluated once per seed and kept
        for seed in [0, 1] {
            let floor = try json(out.appendingPathComponent("floor/seed-\(seed).json"))
            XCTAssertNotNil(floor["top1"] as? Double)
        }
        XCTAssertNotNil(md.split(separator: "\n").first { $0.hasPrefix("| random init (floor) | 2/2 |") }, md)
        // MaCLR against the baseline, paired by test video: the mean change is the difference of the two rows' probe means
        let paired = (results["paired"] as! [[String: Any]]).first { $0["variant"] as? String == "maclr" && $0["metric"] as? String == "probe_top1" }!
        let change = (probeByVariant["maclr"]!.reduce(0, +) - probeByVariant["visual-only"]!.reduce(0, +)) / 2
        XCTAssertEqual(paired["mean"] as! Double, change, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(paired["low"] as! Double, paired["mean"] as! Double)
        XCTAssertGreaterThanOrEqual(paired["high"] as! Double, paired["mean"] as! Double)
        XCTAssertTrue(md.contains("Against the baseline (visual-only)"), md)
        XCTAssertTrue(md.contains("| maclr | " + String(format: "%+.1f", 100 * change)), md)
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8).contains("Against the baseline"))
        for file in ["results.csv", "report.html", "plot-probe_top1.png", "plot-knn_top1.png", "loss-curves.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let png = try Data(contentsOf: out.appendingPathComponent("loss-curves.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")

        let resultFile = out.appendingPathComponent("runs/maclr/seed-1/result.json")
        let before = try FileManager.default.attributesOfItem(atPath: resultFile.path)[.modificationDate] as! Date
        let again = try ablate(sweep)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("0 runs completed, 4 already complete"), again.out)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: resultFile.path)[.modificationDate] as? Date, before)
    }

    func testAFailingVariantIsListedWhileTheOthersComplete() throws {
        let sweep = try sweepFile("failing", variants: Self.twoVariants + """

              - name: missing-data
                set: {data.dataset: /nonexistent/dataset}
            """, seeds: "[0]")
        let r = try ablate(sweep)
        XCTAssertEqual(r.status, 1, "a failed run makes the exit status non-zero")
        XCTAssertTrue(r.out.contains("2 runs completed"), r.out)
        XCTAssertTrue(r.out.contains("failed: missing-data/seed-0: /nonexistent/dataset"), r.out)
        XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        let md = try String(contentsOf: dir.appendingPathComponent("failing/results.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("- `missing-data/seed-0`: /nonexistent/dataset"), md)
        XCTAssertTrue(md.contains("2 runs complete, 1 failed"), md)
    }

    func startAblate(_ sweep: URL, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = ["ablate", sweep.path, "--threads", "1"] + extra
        p.standardError = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Sends `signal` to a sweep once `run` has the checkpoint of `step` (or the sweep ended, or
    /// two minutes passed), and waits for it to exit.
    func stop(_ p: Process, with signal: Int32, once run: URL, hasCheckpoint step: Int) {
        let meta = run.appendingPathComponent(String(format: "checkpoints/step-%07d/meta.json", step)).path
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline && !FileManager.default.fileExists(atPath: meta) { usleep(2_000) }
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
    }

    /// SIGTERM stops a sweep with a checkpoint and exit 143; then rounds of SIGTERM and SIGKILL
    /// at random moments on a sweep split over two shard processes. Each rerun ends in the
    /// uninterrupted sweep's tables.
    func testSIGTERMAndRandomKillsOfTwoShardsEndInTheUninterruptedTables() throws {
        let steps = ["--set", "optim.steps=24"]
        let whole = try sweepFile("whole", variants: Self.twoVariants)
        XCTAssertEqual(try ablate(whole, steps).status, 0)
        let expected = try tables(dir.appendingPathComponent("whole"))

        let stopped = try sweepFile("stopped", variants: Self.twoVariants)
        let p = try startAblate(stopped, steps)
        let firstRun = dir.appendingPathComponent("stopped/runs/visual-only/seed-0")
        stop(p, with: SIGTERM, once: firstRun, hasCheckpoint: 4)
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 143, "128 + SIGTERM: interrupted")
        XCTAssertFalse(FileManager.default.fileExists(atPath: firstRun.appendingPathComponent("result.json").path))
        let kept = try FileManager.default.contentsOfDirectory(atPath: firstRun.appendingPathComponent("checkpoints").path).filter { $0.hasPrefix("step-") }
        XCTAssertFalse(kept.isEmpty, "a checkpoint to resume from")
        let resumed = try ablate(stopped, steps)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("resuming from"), resumed.err)
        XCTAssertEqual(try tables(dir.appendingPathComponent("stopped")).markdown, expected.markdown)
        XCTAssertEqual(try tables(dir.appendingPathComponent("stopped")).csv, expected.csv)

        // chaos: two shards, each stopped at a random moment by SIGTERM or SIGKILL, four rounds
        let chaos = try sweepFile("chaos", variants: Self.twoVariants)
        var rng = SeededGenerator(state: 7)
        var outcomes: [String] = []
        for _ in 0..<4 {
            let shards = try (1...2).map { try startAblate(chaos, steps + ["--shard", "\($0)/2"]) }
            for shard in shards {
                usleep(UInt32(100_000 + rng.next() % 900_000))
                let signal = rng.next() % 2 == 0 ? SIGTERM : SIGKILL
                let wasRunning = shard.isRunning
                kill(shard.processIdentifier, signal)
                shard.waitUntilExit()
                if !wasRunning { outcomes.append("finished"); continue }
                if signal == SIGKILL {
                    outcomes.append(shard.terminationReason == .uncaughtSignal ? "SIGKILL" : "finished")
                } else {
                    // 143 mid-run; 0 when its runs were done and it was writing its report
                    XCTAssertTrue([0, 143].contains(shard.terminationStatus), "\(shard.terminationStatus)")
                    outcomes.append(shard.terminationStatus == 143 ? "SIGTERM" : "finished")
                }
            }
        }
        print("chaos rounds: \(outcomes.joined(separator: ", "))")
        XCTAssertGreaterThan(outcomes.filter { $0 != "finished" }.count, 2, "kills landed mid-run: \(outcomes)")
        for i in 1...2 { XCTAssertEqual(try ablate(chaos, steps + ["--shard", "\(i)/2"]).status, 0) }
        let report = try ablate(chaos, ["--report"])
        XCTAssertEqual(report.status, 0, report.err)
        XCTAssertEqual(try tables(dir.appendingPathComponent("chaos")).markdown, expected.markdown)
        XCTAssertEqual(try tables(dir.appendingPathComponent("chaos")).csv, expected.csv)
    }

    func testAKilledSweepResumesAndShardsInTwoProcessesGiveTheSameTable() throws {
        let whole = try sweepFile("whole", variants: Self.twoVariants)
        XCTAssertEqual(try ablate(whole).status, 0)
        let expected = try tables(dir.appendingPathComponent("whole"))

        // SIGKILL once the first run has a checkpoint and before it is complete
        let killed = try sweepFile("killed", variants: Self.twoVariants)
        let p = try startAblate(killed)
        let firstRun = dir.appendingPathComponent("killed/runs/visual-only/seed-0")
        stop(p, with: SIGKILL, once: firstRun, hasCheckpoint: 2)
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertFalse(FileManager.default.fileExists(atPath: firstRun.appendingPathComponent("result.json").path), "killed before the run completed")
        let resumed = try ablate(killed)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("resuming from"), "the interrupted run resumed from its checkpoint")
        XCTAssertEqual(try tables(dir.appendingPathComponent("killed")).markdown, expected.markdown)
        XCTAssertEqual(try tables(dir.appendingPathComponent("killed")).csv, expected.csv)

        // two shards at once on one folder, then --report
        let sharded = try sweepFile("sharded", variants: Self.twoVariants)
        let shards = try (1...2).map { try startAblate(sharded, ["--shard", "\($0)/2"]) }
        for s in shards { s.waitUntilExit(); XCTAssertEqual(s.terminationStatus, 0) }
        let report = try ablate(sharded, ["--report"])
        XCTAssertEqual(report.status, 0, report.err)
        XCTAssertTrue(report.out.contains("4 runs complete, 0 failed, 0 pending"), report.out)
        XCTAssertEqual(try tables(dir.appendingPathComponent("sharded")).markdown, expected.markdown)
        XCTAssertEqual(try tables(dir.appendingPathComponent("sharded")).csv, expected.csv)
    }
}

/// One small prepared dataset (4 classes x 4 videos of 16 frames, 32x32, with flow), made once
/// and shared by the tests that train on it.
enum TinyDataset {
    nonisolated(unsafe) static var made: URL?

    static func url() throws -> URL {
        if let d = made { return d }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-data-\(getpid())")
        let r1 = try runMaclr(["synth", root.appendingPathComponent("videos").path, "--classes", "4", "--per-class", "4", "--frames", "16", "--size", "32"])
        XCTAssertEqual(r1.status, 0, r1.err)
        let r2 = try runMaclr(["prepare", root.appendingPathComponent("videos/labels.csv").path, root.appendingPathComponent("dataset").path,
                               "--size", "32x32", "--flow-bound", "4"])
        XCTAssertEqual(r2.status, 0, r2.err)
        made = root.appendingPathComponent("dataset")
        return made!
    }

    static func remove() {
        if let d = made { try? FileManager.default.removeItem(at: d.deletingLastPathComponent()) }
        made = nil
    }
}

/// `maclr saliency` on a briefly trained run: PNG frames and a GIF, and an unknown video named.
final class SaliencyCLITests: XCTestCase {
    override class func tearDown() { TinyDataset.remove() }

    func testSaliencyPicturesOfATrainedRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("saliency-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try TinyDataset.url()
        let train = try runMaclr(["pretrain", ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/mcl.yaml").path,
                                  "--set", "data.dataset=\(data.path)", "--set", "train.output=\(dir.appendingPathComponent("run").path)",
                                  "--set", "optim.steps=2", "--set", "optim.warmup_steps=1", "--set", "optim.batch_size=4", "--set", "data.crop=16",
                                  "--set", "data.clip_frames=4", "--set", "model.queue_size=8", "--set", "model.head_hidden=16", "--threads", "1"])
        XCTAssertEqual(train.status, 0, train.err)
        XCTAssertTrue(train.err.contains("mal_st"), "the MCL recipe trains with the alignment loss: \(train.err.suffix(400))")
        let out = dir.appendingPathComponent("pictures")
        let r = try runMaclr(["saliency", "--checkpoint", dir.appendingPathComponent("run").path, "--video", "right/right_0000",
                              "--output", out.path, "--scale", "2", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("wrote 4 PNG frames"), r.out)
        XCTAssertNotNil(r.out.range(of: #"\d+ % of the map's mass lies where the motion boundaries are above their mean \(\d+ % of the pixels\)"#,
                                    options: .regularExpression), r.out)
        for name in ["frame-000.png", "frame-003.png", "saliency.gif"] {
            let bytes = try Data(contentsOf: out.appendingPathComponent(name))
            XCTAssertEqual(Array(bytes.prefix(3)), name.hasSuffix(".png") ? [0x89, 0x50, 0x4E] : [0x47, 0x49, 0x46], name)
        }
        let bad = try runMaclr(["saliency", "--checkpoint", dir.appendingPathComponent("run").path, "--video", "nope", "--output", out.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("no video named 'nope'"), bad.err)
        XCTAssertFalse(bad.err.contains("Fatal"), bad.err)
    }
}

/// A seeded generator for tests that draw their timing (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
