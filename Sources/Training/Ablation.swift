import DataHDF5
import Foundation
import Tensor

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
        let started = Date()
        var trained = 0
        for (i, run) in mine.enumerated() {
            let tag = "[\(i + 1)/\(mine.count)] \(run.id)"
            if RunFiles(run.folder).isComplete { outcome.skipped.append(run.id); log("\(tag): complete, skipped\n"); continue }
            guard let lock = try RunLock.acquire(run.folder) else {
                outcome.busy.append(run.id); log("\(tag): another process holds \(RunFiles(run.folder).lock.path), skipped\n"); continue
            }
            defer { lock.release() }
            // finished by another process between the check and the lock
            if RunFiles(run.folder).isComplete { outcome.skipped.append(run.id); log("\(tag): complete, skipped\n"); continue }
            log("\(tag): \(run.variant.overrides.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) seed=\(run.seed)\n")
            let runStart = Date()
            do {
                try RunFiles(run.folder).clearFailure()
                let result = try pretrain(run.recipe, fresh: false, evaluate: true, holding: lock) { text in log(text) }
                guard let report = result.report else { throw TrainingError("\(run.id): no evaluation") }
                try RunFiles(run.folder).writeResult(run: run, report: report, seconds: Date().timeIntervalSince(runStart))
                outcome.completed.append(run.id)
                log("\(tag): \(report.summary)\n")
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

    /// A run's estimated cost, from a few timed steps on its real data and the encoder's
    /// time per video at evaluation.
    public struct Estimate {
        public var secondsPerStep: Double, steps: Int, evalSeconds: Double
        public var total: Double { secondsPerStep * Double(steps) + evalSeconds }
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
        return Estimate(secondsPerStep: perStep, steps: recipe.optim.steps, evalSeconds: perVideo * Double(videos))
    }
}

/// The files of one run folder that the sweep reads: `result.json` (written when the run's
/// evaluation is done: the run is complete), `failed.json` (its last error), `run.lock`.
struct RunFiles {
    let folder: URL
    init(_ folder: URL) { self.folder = folder }
    var result: URL { folder.appendingPathComponent("result.json") }
    var failure: URL { folder.appendingPathComponent("failed.json") }
    var lock: URL { folder.appendingPathComponent("run.lock") }
    var metrics: URL { folder.appendingPathComponent("metrics.jsonl") }

    var isComplete: Bool { FileManager.default.fileExists(atPath: result.path) }

    struct Result: Codable {
        var variant: String, seed: Int
        var overrides: [String: String]
        var metrics: [String: Double]
        var seconds: Double
    }

    struct Failure: Codable { var error: String }

    func writeResult(run: Sweep.Run, report: Evaluation.Report, seconds: Double) throws {
        var metrics: [String: Double] = [
            Sweep.Metric.probeTop1.rawValue: report.top1, Sweep.Metric.probeTop5.rawValue: report.top5,
            Sweep.Metric.retrievalR1.rawValue: report.recallAt1, Sweep.Metric.retrievalR5.rawValue: report.recallAt5,
            Sweep.Metric.retrievalR10.rawValue: report.recallAt10,
        ]
        if let k = report.knnTop1 { metrics[Sweep.Metric.knnTop1.rawValue] = k }
        if let loss = finalLoss() { metrics[Sweep.Metric.finalLoss.rawValue] = loss }
        let r = Result(variant: run.variant.name, seed: run.seed,
                       overrides: run.variant.overrideValues,
                       metrics: metrics, seconds: seconds)
        try writeAtomically(try JSONEncoder.sorted.encode(r), to: result)
    }

    func writeFailure(_ line: String) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try writeAtomically(try JSONEncoder.sorted.encode(Failure(error: line)), to: failure)
    }

    func clearFailure() throws {
        if FileManager.default.fileExists(atPath: failure.path) { try FileManager.default.removeItem(at: failure) }
    }

    func readResult() -> Result? { (try? Data(contentsOf: result)).flatMap { try? JSONDecoder().decode(Result.self, from: $0) } }
    func readFailure() -> String? { (try? Data(contentsOf: failure)).flatMap { try? JSONDecoder().decode(Failure.self, from: $0) }?.error }

    /// (step, loss) of every line of metrics.jsonl.
    func lossCurve() -> [(step: Int, loss: Double)] {
        guard let text = try? String(contentsOf: metrics, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let d = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = d["step"] as? Int, let loss = d["loss"] as? Double else { return nil }
            return (step, loss)
        }
    }

    func finalLoss() -> Double? { lossCurve().last?.loss }
}

/// Writes `data` beside `url` under a temporary name, then renames it into place: a reader (or
/// another process writing the same report) sees the old file or the new one, never half of one.
func writeAtomically(_ data: Data, to url: URL) throws {
    do { try DurableFiles.write(data, to: url) } catch { throw TrainingError("\(error)") }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]; return e
    }
}

/// A run folder's lock: a file created exclusively (O_EXCL, atomic on local and NFS v3+ file
/// systems) holding the host and pid. A lock whose process is gone (same host) or whose
/// heartbeat is older than `staleAfter` (any host) is taken over, so a killed run never stays
/// locked.
final class RunLock: @unchecked Sendable {
    let url: URL
    private var lastBeat = Date()
    static let staleAfter: TimeInterval = 600

    private init(url: URL) { self.url = url }

    static var host: String { ProcessInfo.processInfo.hostName }

    /// The lock, or nil when a live process holds it.
    static func acquire(_ folder: URL) throws -> RunLock? {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = RunFiles(folder).lock
        for _ in 0..<3 {
            let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 {
                let text = "\(host) \(getpid())\n"
                _ = text.withCString { write(fd, $0, strlen($0)) }
                close(fd)
                return RunLock(url: url)
            }
            guard errno == EEXIST else { throw TrainingError("\(url.path): cannot create lock (\(String(cString: strerror(errno))))") }
            guard isStale(url) else { return nil }
            // take a stale lock over by renaming it away: of two processes that both found it
            // stale, only one rename succeeds
            let away = url.appendingPathExtension("stale-\(getpid())-\(UUID().uuidString)")
            if rename(url.path, away.path) == 0 { try? FileManager.default.removeItem(at: away) }
        }
        return nil
    }

    static func isStale(_ url: URL) -> Bool {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return false }
        let parts = text.split(whereSeparator: \.isWhitespace)
        if parts.count == 2, String(parts[0]) == host, let pid = Int32(parts[1]), pid != getpid() {
            // on this host the process itself answers; a live one keeps its lock however quiet it is
            if kill(pid, 0) != 0 && errno == ESRCH { return true }
            return isZombie(pid)
        }
        let modified = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date()
        return Date().timeIntervalSince(modified) > staleAfter
    }

    /// A process that has ended but not been reaped (its parent gone too, under an init that
    /// does not reap) still answers kill(pid, 0): /proc says it is a zombie.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Marks the lock alive (its modification time), at most every 30 s.
    func heartbeat() {
        guard Date().timeIntervalSince(lastBeat) > 30 else { return }
        lastBeat = Date()
        _ = utimes(url.path, nil)
    }

    func release() { try? FileManager.default.removeItem(at: url) }

    /// Who holds the lock of `folder`: "host pid", as written.
    static func holder(_ folder: URL) -> String {
        ((try? String(contentsOf: RunFiles(folder).lock, encoding: .utf8)) ?? "unknown").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
