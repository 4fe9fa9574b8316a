import DataHDF5
import Evaluation
import Foundation
import LongWork
import Tensor
import Training

/// `maclr ablate`: runs a sweep's variant x seed runs (pretrain, then evaluate), each in its own
/// folder under the sweep's output, skipping complete runs, resuming interrupted ones from their
/// checkpoints, and going on past failures; rewrites the reports after every finished run.
/// With `shard` i of N it takes every N-th run, so independent processes (on one machine or
/// many, sharing the folder) split a sweep; a lock per run folder keeps two off one run.
public struct Ablation {
    public let sweep: Sweep
    /// 1-based: this process runs runs i, i + N, i + 2N, ... (in `sweep.runs` order).
    public let shard: Int, shards: Int

    public init(sweep: Sweep, shard: Int = 1, of shards: Int = 1) throws {
        guard shards >= 1, (1...shards).contains(shard) else { throw TrainingError("--shard \(shard)/\(shards): expected i/N with 1 <= i <= N") }
        self.sweep = sweep; self.shard = shard; self.shards = shards
    }

    /// This shard's runs.
    public var runs: [Sweep.Run] { sweep.runs.enumerated().filter { $0.offset % shards == shard - 1 }.map(\.element) }

    public struct Outcome {
        public var completed: [String] = [], skipped: [String] = [], busy: [String] = []
        public var failed: [(run: String, error: String)] = []
    }

    /// Runs this shard's runs that are not complete.
    public func run(log: @escaping (String) -> Void) throws -> Outcome {
        var outcome = Outcome()
        try FileManager.default.createDirectory(at: sweep.output, withIntermediateDirectories: true)
        let mine = runs
        log("\(sweep.name): \(mine.count) of \(sweep.runs.count) runs in this process (shard \(shard)/\(shards)), output \(sweep.output.path)\n")
        if shard == 1 { try evaluateFloor(log: log) }
        let started = Date()
        var trained = 0
        for (i, run) in mine.enumerated() {
            let tag = "[\(i + 1)/\(mine.count)] \(run.id)"
            if RunFiles(run.folder).isComplete { outcome.skipped.append(run.id); log("\(tag): complete, skipped\n"); continue }
            guard let lock = try RunLock.acquire(RunFolder(run.folder)) else {
                outcome.busy.append(run.id); log("\(tag): another process holds \(RunFolder(run.folder).lock.path), skipped\n"); continue
            }
            defer { lock.release() }
            // finished by another process between the check and the lock
            if RunFiles(run.folder).isComplete { outcome.skipped.append(run.id); log("\(tag): complete, skipped\n"); continue }
            log("\(tag): \(run.variant.overrides.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) seed=\(run.seed)\n")
            let runStart = Date()
            do {
                try RunFiles(run.folder).clearFailure()
                guard let report = try pretrainAndEvaluate(run.recipe, fresh: false, holding: lock, log: { log($0) }).report else {
                    throw TrainingError("\(run.id): no evaluation")
                }
                log("\(tag): \(report.summary)\n")
                var metrics = RunFiles.metrics(of: report, dataset: nil)
                metrics.merge(try evaluateFurther(run, log: log)) { $1 }
                try RunFiles(run.folder).writeResult(run: run, metrics: metrics, perVideo: report.perVideo, seconds: Date().timeIntervalSince(runStart))
                outcome.completed.append(run.id)
            } catch let interrupted as Interrupted {
                throw interrupted
            } catch {
                let line = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
                try? RunFiles(run.folder).writeFailure(line)
                outcome.failed.append((run.id, line))
                log("\(tag): failed: \(line)\n")
            }
            trained += 1
            let perRun = Date().timeIntervalSince(started) / Double(trained)
            let left = mine.dropFirst(i + 1).filter { !RunFiles($0.folder).isComplete }.count
            let written = try AblationReport.write(sweep)
            log("\(sweep.name): \(written.complete) of \(sweep.runs.count) runs complete, \(written.failed) failed; about \(formatDuration(perRun * Double(left))) left in this process; reports in \(sweep.output.path)\n")
        }
        if trained == 0 { _ = try AblationReport.write(sweep) }
        return outcome
    }

    /// The reports' floor: the random init of the sweep's base recipe (with its shared settings)
    /// evaluated at each seed whose figures are not kept yet (`Sweep.floorFile`), with the
    /// motion test when the sweep runs it (`Sweep.floorViewsFile`).
    func evaluateFloor(log: @escaping (String) -> Void) throws {
        for seed in sweep.seeds {
            let evaluated = FileManager.default.fileExists(atPath: sweep.floorFile(seed: seed).path)
            let viewed = !sweep.evaluations.contains(.views) || FileManager.default.fileExists(atPath: sweep.floorViewsFile(seed: seed).path)
            guard !evaluated || !viewed else { continue }
            var recipe = sweep.floorRecipe
            try recipe.set("seed", seed)
            let net = try Evaluation.loadEncoder(checkpoint: nil, encoderFile: nil, recipe: recipe)
            let dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
            if !evaluated {
                let report = try Evaluation.run(encoder: { net.features($0) }, dataset: dataset, recipe: recipe, log: log)
                log("random init, seed \(seed): \(report.summary)\n")
                try report.write(to: sweep.floorFile(seed: seed))
            }
            if !viewed {
                let report = try Evaluation.runViews(encoder: { net.features($0) }, dataset: dataset, recipe: recipe, views: Self.motionTestViews, log: log)
                log("random init, seed \(seed), motion test: \(Self.motionTestSummary(report))\n")
                try report.write(to: sweep.floorViewsFile(seed: seed))
            }
        }
    }

    /// The motion test's views (`eval: [views]`), besides the normal one the probe has.
    static let motionTestViews: [TemporalView] = [.shuffled, .frozen, .reversed]

    /// The motion test's figures as table columns.
    static func motionTestMetrics(_ report: Evaluation.ViewsReport) -> [String: Double] {
        let metricsOfView: [TemporalView: (Sweep.Metric, Sweep.Metric)] = [.shuffled: (.probeTop1Shuffled, .knnTop1Shuffled),
                                                                           .frozen: (.probeTop1Frozen, .knnTop1Frozen),
                                                                           .reversed: (.probeTop1Reversed, .knnTop1Reversed)]
        var metrics: [String: Double] = [:]
        for view in motionTestViews {
            guard let r = report.views[view.rawValue], let (probe, knn) = metricsOfView[view] else { continue }
            metrics[Sweep.Column(probe).rawValue] = r.top1
            metrics[Sweep.Column(knn).rawValue] = r.knnTop1
        }
        return metrics
    }

    static func motionTestSummary(_ report: Evaluation.ViewsReport) -> String {
        motionTestViews.map { v in String(format: "%@ probe %.1f%%", v.rawValue, 100 * (report.views[v.rawValue]?.top1 ?? 0)) }.joined(separator: ", ")
    }

    /// `maclr ablate --dry-run`: every run of this shard with its estimated cost (one estimate per
    /// variant), and the total for the runs not complete.
    public func printEstimates(out: (String) -> Void) {
        out("\(sweep.name): \(runs.count) runs in this shard, estimated from 3 timed steps per variant on its data:")
        var estimates: [String: Result<Estimate, Error>] = [:]
        var total = 0.0
        for run in runs {
            if estimates[run.variant.name] == nil {
                estimates[run.variant.name] = Result { try Self.estimate(run) }
            }
            let state = RunFiles(run.folder).isComplete ? " (complete)" : ""
            switch estimates[run.variant.name]! {
            case .success(let e):
                if state.isEmpty { total += e.total }
                out(String(format: "  %@%@: %d steps x %.2f s + eval %.0f s = %@; %@ %.2f GiB of memory at peak", run.id, state, e.steps,
                           e.secondsPerStep, e.evalSeconds, formatDuration(e.total), e.memory.isLowerBound ? "at least" : "about",
                           Double(e.memory.total) / Double(1 << 30)))
            case .failure(let error): out("  \(run.id): cannot estimate: \(error)")
            }
        }
        out("total for the runs not complete: about \(formatDuration(total))")
    }

    /// What a run's encoder gives beyond the probe on its own dataset: fine-tuned on it (`eval:`
    /// names finetune), and on each transfer dataset the probe, retrieval and kNN, and fine-tuned.
    /// Each fine-tune has its own run folder inside the run's, so it resumes too.
    func evaluateFurther(_ run: Sweep.Run, log: @escaping (String) -> Void) throws -> [String: Double] {
        var metrics: [String: Double] = [:]
        let tag = "[\(run.id)]"
        if sweep.evaluations.contains(.finetune) {
            let report = try finetune(run, dataset: run.recipe.data.dataset, name: nil, log: log)
            metrics[Sweep.Column(.finetuneTop1).rawValue] = report.top1
            log("\(tag) \(report.summary)\n")
        }
        guard !sweep.transfer.isEmpty || sweep.evaluations.contains(.views) else { return metrics }
        let encoder = try Evaluation.loadEncoder(from: try Checkpoint(path: run.folder.path))
        if sweep.evaluations.contains(.views) {
            let report = try Evaluation.runViews(encoder: { encoder.features($0) }, dataset: try ShardDataset(folder: URL(fileURLWithPath: run.recipe.data.dataset)),
                                                 recipe: run.recipe, views: Self.motionTestViews, log: log)
            metrics.merge(Self.motionTestMetrics(report)) { $1 }
            log("\(tag) motion test: \(Self.motionTestSummary(report))\n")
        }
        for t in sweep.transfer {
            var recipe = run.recipe
            try recipe.set("data.dataset", t.folder)
            let report = try Evaluation.run(encoder: { encoder.features($0) }, dataset: try ShardDataset(folder: URL(fileURLWithPath: t.folder)),
                                            recipe: recipe, log: log)
            log("\(tag) on \(t.name): \(report.summary)\n")
            metrics.merge(RunFiles.metrics(of: report, dataset: t.name)) { $1 }
            if sweep.evaluations.contains(.finetune) {
                let tuned = try finetune(run, dataset: t.folder, name: t.name, log: log)
                metrics[Sweep.Column(.finetuneTop1, dataset: t.name).rawValue] = tuned.top1
                log("\(tag) on \(t.name): \(tuned.summary)\n")
            }
        }
        return metrics
    }

    /// Fine-tunes `run`'s encoder on `dataset` with the sweep's fine-tuning recipe, at the run's
    /// seed and with its encoder's shape and clip geometry, in run/finetune[-NAME].
    func finetune(_ run: Sweep.Run, dataset: String, name: String?, log: @escaping (String) -> Void) throws -> Evaluation.ClassifierReport {
        var recipe = sweep.finetuneRecipe!
        let inherited = ["model.arch", "model.width", "model.blocks", "model.init", "data.clip_frames", "data.clip_stride", "data.crop"]
        try recipe.set(inherited.map { ($0, run.recipe.values[$0]!.base) }
                       + [("seed", run.seed), ("data.dataset", dataset), ("model.init_from", run.folder.path),
                          ("train.output", run.folder.appendingPathComponent(name.map { "finetune-\($0)" } ?? "finetune").path)])
        guard let report = try finetuneAndTest(recipe, fresh: false, log: log).report else { throw TrainingError("\(run.id): no fine-tuned test") }
        return report
    }

    /// A run's estimated cost, from a few timed steps on its real data and the encoder's
    /// time per video at evaluation.
    public struct Estimate {
        public var secondsPerStep: Double, steps: Int, evalSeconds: Double
        public var total: Double { secondsPerStep * Double(steps) + evalSeconds }
        /// The run's peak memory, estimated before it starts.
        public var memory: MemoryEstimate
    }

    /// Times `timedSteps` steps (after one untimed) of `run`'s recipe in a scratch folder, and
    /// the features of a few videos.
    public static func estimate(_ run: Sweep.Run, timedSteps: Int = 3) throws -> Estimate {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("maclr-estimate-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var recipe = run.recipe
        try recipe.set("train.output", scratch.path)
        try recipe.set("train.checkpoint_every", 1_000_000)
        let trainer = try Trainer(recipe: recipe, fresh: true)
        let steps = min(timedSteps, max(1, recipe.optim.steps - 1))
        try trainer.run(stopAfter: 1) { _ in }
        let begin = Date()
        try trainer.run(stopAfter: steps) { _ in }
        let perStep = Date().timeIntervalSince(begin) / Double(steps)
        let dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
        let net = try Evaluation.loadEncoder(checkpoint: nil, encoderFile: nil, recipe: recipe)
        let sample = 4
        let evalBegin = Date()
        _ = try Evaluation.features(encoder: { net.features($0) }, dataset: dataset, split: recipe.eval.splitTrain, sampling: recipe.sampling,
                                    clipsPerVideo: recipe.eval.clipsPerVideo, limit: sample)
        let perVideo = Date().timeIntervalSince(evalBegin) / Double(sample)
        let videos = try dataset.indices(split: recipe.eval.splitTrain).count + dataset.indices(split: recipe.eval.splitTest).count
        return Estimate(secondsPerStep: perStep, steps: recipe.optim.steps, evalSeconds: perVideo * Double(videos), memory: trainer.memoryEstimate)
    }
}

/// What a sweep reads and writes in a run folder: `result.json` (written when the run's
/// evaluation is done: the run is complete) and `failed.json` (its last error), beside the
/// metrics the run left. The file names are the run folder's.
struct RunFiles {
    let folder: RunFolder
    init(_ url: URL) { folder = RunFolder(url) }

    var isComplete: Bool { FileManager.default.fileExists(atPath: folder.result.path) }

    struct Result: Codable {
        var variant: String, seed: Int
        var overrides: [String: String]
        var metrics: [String: Double]
        /// Each test video's outcome on the run's own dataset (nil in results written before).
        var perVideo: Evaluation.PerVideo?
        var seconds: Double
    }

    struct Failure: Codable { var error: String }

    /// A report's figures under their column names (suffixed "@NAME" on a transfer dataset).
    static func metrics(of report: Evaluation.Report, dataset: String?) -> [String: Double] {
        var figures: [Sweep.Metric: Double] = [.probeTop1: report.top1, .probeTop5: report.top5, .retrievalR1: report.recallAt1,
                                               .retrievalR5: report.recallAt5, .retrievalR10: report.recallAt10]
        if let k = report.knnTop1 { figures[.knnTop1] = k }
        return Dictionary(uniqueKeysWithValues: figures.map { (Sweep.Column($0.key, dataset: dataset).rawValue, $0.value) })
    }

    func writeResult(run: Sweep.Run, metrics given: [String: Double], perVideo: Evaluation.PerVideo? = nil, seconds: Double) throws {
        var metrics = given
        if let loss = finalLoss() { metrics[Sweep.Metric.finalLoss.rawValue] = loss }
        let r = Result(variant: run.variant.name, seed: run.seed, overrides: run.variant.overrideValues, metrics: metrics, perVideo: perVideo,
                       seconds: seconds)
        try writeAtomically(try JSONEncoder.sorted.encode(r), to: folder.result)
    }

    func writeFailure(_ line: String) throws {
        try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
        try writeAtomically(try JSONEncoder.sorted.encode(Failure(error: line)), to: folder.failure)
    }

    func clearFailure() throws {
        if FileManager.default.fileExists(atPath: folder.failure.path) { try FileManager.default.removeItem(at: folder.failure) }
    }

    func readResult() -> Result? { (try? Data(contentsOf: folder.result)).flatMap { try? JSONDecoder().decode(Result.self, from: $0) } }
    func readFailure() -> String? { (try? Data(contentsOf: folder.failure)).flatMap { try? JSONDecoder().decode(Failure.self, from: $0) }?.error }

    /// (step, loss) of every logged step.
    func lossCurve() -> [(step: Int, loss: Double)] {
        folder.readMetrics().compactMap { m in m.values["loss"].map { (m.step, Double($0)) } }
    }

    func finalLoss() -> Double? { lossCurve().last?.loss }
}

/// Writes `data` beside `url` under a temporary name, then renames it into place: a reader (or
/// another process writing the same report) sees the old file or the new one, never half of one.
func writeAtomically(_ data: Data, to url: URL) throws {
    do { try DurableFiles.write(data, to: url) } catch { throw TrainingError("\(error)") }
}
