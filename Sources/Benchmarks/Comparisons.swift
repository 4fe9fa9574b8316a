import Backbones
import Foundation
import Tensor
import Training

// What `maclr bench` prints: each benchmark run beside its anchor, then its table. The command
// line parses the options and hands them here; `out` receives the table's lines (stdout) and
// `log` the progress (stderr).

/// The first executable of: `explicit`, $MACLR_TORCH_PYTHON, /opt/torchref/bin/python, then `fallbacks`.
public func findPython(_ explicit: String?, fallbacks: [String] = []) -> String? {
    let candidates = [explicit, ProcessInfo.processInfo.environment["MACLR_TORCH_PYTHON"], "/opt/torchref/bin/python"] + fallbacks
    return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// `maclr bench step`: a recipe's step beside the PyTorch mirror's, default and tuned, taking
/// turns for `rounds` rounds; with MCL's alignment loss, also the step without it.
public struct StepComparison {
    /// Our step: the recipe, timed iterations per round, per-layer figures.
    public var benchmark: StepBenchmark
    /// How the table names the recipe (its file).
    public var recipeName: String
    public var rounds = 3
    /// A Python with torch, or nil; `lookForTorch` says whether one was wanted (to say it is missing).
    public var torchPython: String?
    public var lookForTorch = true
    public var torchScript = "benchmarks/maclr_step_torch.py"
    public var threads: Int
    public init(recipe: Recipe, recipeName: String, threads: Int) {
        benchmark = StepBenchmark(recipe: recipe); self.recipeName = recipeName; self.threads = threads
    }

    public func run(out: (String) -> Void, log: @escaping (String) -> Void) throws {
        let bench = benchmark
        let (r, iterations) = (bench.recipe, bench.iterations)
        var python: String?
        if !bench.mirrorable {
            log("(the PyTorch mirror builds a supervised classifier, or a frame-wise Motion pathway or none, the MaCLR loss at its default weights, MCL's alignment loss at its defaults and shuffled key BN only: not run for this recipe)\n")
        } else if let found = torchPython, FileManager.default.fileExists(atPath: torchScript) {
            python = found
        } else if lookForTorch {
            log("(PyTorch not found: pass --torch-python to compare)\n")
        }
        // Per mirror: every timed step, the first round's peak RSS (later children start from
        // our high-water mark), and whether any round failed.
        var mirrored: [(name: String, times: [Double], rss: Double?, failed: Bool)] =
            python == nil ? [] : [("PyTorch default", [], nil, false), ("PyTorch tuned", [], nil, false)]
        var ourTimes: [Double] = [], ourRSS = 0.0
        // with MCL's alignment loss, the same step without it in the same rounds (first, so its
        // peak RSS is its own): the cost of the double backward
        var plain: StepBenchmark?
        if r.loss.alignment {
            var withoutAlignment = r
            try withoutAlignment.set("loss.alignment_weight", 0)
            plain = StepBenchmark(recipe: withoutAlignment)
            plain!.iterations = iterations
        }
        var plainTimes: [Double] = [], plainRSS = 0.0
        for round in 0..<rounds {
            if rounds > 1 { log("round \(round + 1)/\(rounds)\n") }
            // PyTorch first: a child spawned after our peak would inherit our RSS high-water mark.
            for m in mirrored.indices {
                let figures = bench.runMirror(python: python!, script: torchScript, tuned: m == 1)
                guard let times = (figures?["train_step"] as? [String: Any])?["all_s"] as? [Double], !times.isEmpty else {
                    mirrored[m].failed = true; continue
                }
                mirrored[m].times += times
                if round == 0 { mirrored[m].rss = figures?["peak_rss_GiB"] as? Double }
            }
            if let plain {
                let p = plain.run(log: log)
                plainTimes += p.stepTimes
                if round == 0 { plainRSS = p.peakRSSGiB }
            }
            let ours = bench.run(log: log)
            ourTimes += ours.stepTimes; ourRSS = ours.peakRSSGiB
        }
        let ourStep = median(ourTimes)
        let batch = r.optim.batchSize
        let kind = r.supervised ? "fine-tuning step (\(bench.classes) classes)" : "MaCLR step"
        out(String(format: "\n%@: %@, batch %d, %d frames, %dx%d, %d threads (GEMMs: %@)", recipeName, kind, batch,
                     r.data.clipFrames, r.data.crop, r.data.crop, threads, Runtime.gemmDescription))
        out("median of \(rounds) round(s) x \(iterations) timed steps each")
        out("| | step | \(r.supervised ? "clips/s" : "clip pairs/s") | peak RSS | ours faster by |")
        out("|---|---|---|---|---|")
        out(String(format: "| maclr | %.1f ms | %.2f | %.2f GiB | |", ourStep * 1e3, Double(batch) / ourStep, ourRSS))
        let plainStep = plainTimes.isEmpty ? nil : median(plainTimes)
        if let p = plainStep {
            out(String(format: "| maclr without the alignment loss | %.1f ms | %.2f | %.2f GiB | |", p * 1e3, Double(batch) / p, plainRSS))
        }
        for m in mirrored {
            guard !m.failed, !m.times.isEmpty else { out("| \(m.name) | failed | | | |"); continue }
            let s = median(m.times)
            out(String(format: "| %@ | %.1f ms | %.2f | %.2f GiB | %.2fx |", m.name, s * 1e3, Double(batch) / s, m.rss ?? 0, s / ourStep))
        }
        if let p = plainStep {
            out(String(format: "the alignment loss (double backward) costs %.2fx the step's time and %.2fx its peak RSS", ourStep / p, ourRSS / max(plainRSS, 1e-9)))
        }
    }
}

/// `maclr bench engine`: a torchvision video ResNet's forward and training step beside
/// PyTorch's, default and tuned, and the step's share of the machine's measured peak.
public struct EngineComparison {
    /// The network, input and timing of our side; PyTorch runs the same.
    public var benchmark = EngineBenchmark()
    /// A nominal fp32 FMA peak in GFLOP/s to print the step's fraction of.
    public var peak: Double?
    public var torchPython: String?
    public var lookForTorch = true
    public var torchScript = "benchmarks/torch_reference.py"
    public var threads: Int
    /// The engine's conv paths, as the JSON records them.
    public var convPaths: String
    public var json: String?
    public init(threads: Int, convPaths: String) { self.threads = threads; self.convPaths = convPaths }

    public func run(out: (String) -> Void, log: @escaping (String) -> Void) throws {
        let bench = benchmark
        let (arch, twoPathways, batch, frames, size) = (bench.kind, bench.twoPathways, bench.batch, bench.frames, bench.size)
        // PyTorch first: a child spawned after our peak would inherit our RSS high-water mark.
        var torchDefault: [String: Any]?, torchTuned: [String: Any]?
        if let python = torchPython, FileManager.default.fileExists(atPath: torchScript) {
            let script = torchScript
            log("PyTorch reference (\(python)), default:\n")
            torchDefault = runTorchReference(python: python, script: script, kind: bench.kind, twoPathways: twoPathways, batch: batch, frames: frames, size: size,
                                             threads: threads, channelsLast: false, tuned: false)
            log("PyTorch reference, tuned (channels_last_3d, malloc keeps buffers):\n")
            torchTuned = runTorchReference(python: python, script: script, kind: bench.kind, twoPathways: twoPathways, batch: batch, frames: frames, size: size,
                                           threads: threads, channelsLast: true, tuned: true)
        } else if lookForTorch {
            log("(PyTorch reference not found: pass --torch-python and --torch-script to compare)\n")
        }
        let ours = bench.run(log: log)
        var rows: [(String, Double, Double?, Double?)] = []   // (figure, ours s, torch default s, torch tuned s)
        func median(_ r: [String: Any]?, _ key: String) -> Double? { (r?[key] as? [String: Any])?["median_s"] as? Double }
        rows.append(("forward (eval)", ours.forwardSeconds, median(torchDefault, "fwd_nograd"), median(torchTuned, "fwd_nograd")))
        rows.append(("forward (train)", ours.forwardTrainSeconds, median(torchDefault, "fwd_train"), median(torchTuned, "fwd_train")))
        rows.append(("training step", ours.trainStepSeconds, median(torchDefault, "train_step"), median(torchTuned, "train_step")))

        out(String(format: "\n%@%@, batch %d, %d frames, %dx%d, %d threads (GEMMs: %@)", arch.rawValue, twoPathways ? " x2 (RGB + flow, InfoNCE)" : "", batch, frames, size, size, threads, Runtime.gemmDescription))
        out("| figure | ours | clips/s | GFLOP/s (excl. pad) | PyTorch default | ours / default | PyTorch tuned | ours / tuned |")
        out("|---|---|---|---|---|---|---|---|")
        for (name, s, d, t) in rows {
            let flops = name == "training step" ? ours.trainGFLOPsNoPad : ours.forwardGFLOPsNoPad
            func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0 * 1e3) } ?? "-" }
            func speedup(_ v: Double?) -> String { v.map { String(format: "%.2fx", $0 / s) } ?? "-" }
            out("| \(name) | \(ms(s)) | \(String(format: "%.2f", Double(batch) / s)) | \(String(format: "%.1f", flops / s)) | \(ms(d)) | \(speedup(d)) | \(ms(t)) | \(speedup(t)) |")
        }
        out(String(format: "peak RSS: ours %.2f GiB", ours.peakRSSGiB)
              + ((torchDefault?["peak_rss_GiB"] as? Double).map { String(format: ", PyTorch default %.2f GiB", $0) } ?? "")
              + ((torchTuned?["peak_rss_GiB"] as? Double).map { String(format: ", tuned %.2f GiB", $0) } ?? ""))
        let achieved = ours.trainGFLOPsNoPad / ours.trainStepSeconds, measured = ours.machinePeak
        out(String(format: "training step: %.1f GFLOP/s excl. pad = %.0f%% of the FMA peak measured in this run (%.0f GFLOP/s: an FMA-only loop on %d threads, before and after)%@; %.0f%% of a bare OpenBLAS sgemm 1024^3 in this run (%.0f GFLOP/s)",
                     achieved, 100 * achieved / measured.fmaGFLOPs, measured.fmaGFLOPs, threads,
                     peak.map { String(format: ", %.0f%% of the nominal %.0f (--peak)", 100 * achieved / $0, $0) } ?? "",
                     100 * achieved / measured.sgemmGFLOPs, measured.sgemmGFLOPs))
        out("(ours / PyTorch > 1 means we are faster)")
        if let json {
            var out: [String: Any] = ["ours": (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(ours))) ?? [:],
                                      "arch": arch.rawValue, "batch": batch, "frames": frames, "size": size, "threads": threads,
                                      "gemm": Runtime.gemmDescription, "conv_paths": convPaths]
            if let torchDefault { out["torch_default"] = torchDefault }
            if let torchTuned { out["torch_tuned"] = torchTuned }
            try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
    }
}

extension ConvBenchmark {
    /// `maclr bench conv`: runs and prints the table.
    public func report(threads: Int, out: (String) -> Void, log: (String) -> Void) {
        let rows = run(log: log)
        out("conv input \(input) weight \(weight) stride \(stride) padding \(padding), \(threads) threads, median of \(rounds) rounds")
        out("| engine | direction | path taken | ms per call | GFLOP/s |")
        out("|---|---|---|---|---|")
        for r in rows {
            out(String(format: "| %@ | %@ | %@ | %.3f | %.1f |", r.configuration, r.direction.rawValue, r.path.rawValue, r.milliseconds, r.gflops))
        }
    }
}

extension DataBenchmark {
    /// `maclr bench data`: runs and prints the tables.
    public func report(scratch: URL, python: String?, script: String, out: (String) -> Void, log: (String) -> Void) throws {
        let b = self
        let result = try run(scratch: scratch, python: python, script: script, log: log)
        out("\nraw clip reads, RGB + flow, \(b.sampling.frames) frames at stride \(b.sampling.stride) from \(b.size)x\(b.size) shards, one thread:")
        out("| read | maclr clips/s | h5py clips/s | maclr / h5py |")
        out("|---|---|---|---|")
        for p in result.patterns {
            func figure(_ x: Double?) -> String { x.map { String(format: "%.0f", $0) } ?? "-" }
            let ratio = p.ours.flatMap { o in p.h5py.map { String(format: "%.2f", o / $0) } } ?? "-"
            out("| \(p.name) | \(figure(p.ours)) | \(figure(p.h5py)) | \(ratio) |")
        }
        out("\nloader: clips of \(b.sampling.frames) frames (stride \(b.sampling.stride)) cropped to \(b.sampling.width)x\(b.sampling.height), batch \(b.batchSize) pairs, RGB + flow, \(b.workers) loader threads")
        out("| videos | dataset on disk | augmentation | clip pairs/s | loader CPU per batch | peak RSS |")
        out("|---|---|---|---|---|---|")
        for r in result.rows {
            out(String(format: "| %d | %.2f GiB | %@ | %.1f | %.1f ms | %.3f GiB |", r.videos, r.datasetGiB, r.augmented ? "on" : "off",
                         r.pairsPerSecond, r.cpuMillisecondsPerBatch, r.peakRSSGiB))
        }
    }
}
