import ArgumentParser
import Benchmarks
import Foundation
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Throughput figures.",
        subcommands: [EngineBench.self, StepBench.self, ConvBench.self, DataBench.self, FlowBench.self])
}

/// Where the PyTorch reference comes from, shared by the benchmarks that run one.
struct TorchOptions: ParsableArguments {
    @Option(help: "Python with torch and torchvision for the reference (default: $MACLR_TORCH_PYTHON or /opt/torchref/bin/python).")
    var torchPython: String?
    @Flag(help: "Skip the PyTorch reference.") var noTorch = false

    func python() -> String? { noTorch ? nil : findPython(torchPython) }
}

/// The first executable of: `explicit`, $MACLR_TORCH_PYTHON, /opt/torchref/bin/python, then `fallbacks`.
func findPython(_ explicit: String?, fallbacks: [String] = []) -> String? {
    let candidates = [explicit, ProcessInfo.processInfo.environment["MACLR_TORCH_PYTHON"], "/opt/torchref/bin/python"] + fallbacks
    return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

struct StepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "One pretraining step of a recipe's MaCLR model on random clips, beside the same step in PyTorch (benchmarks/maclr_step_torch.py).")

    @Argument(help: "Recipe YAML file.") var recipe = "Recipes/quickstart.yaml"
    @Option(name: .customLong("set"), help: "Override a key (repeatable).") var overrides: [String] = []
    @OptionGroup var engine: EngineFlags
    @Option(help: "Timed iterations per round.") var iterations = 10
    @Option(help: "Rounds: PyTorch default, PyTorch tuned and ours take turns this many times, so that a shared machine's slow spells fall on all three; each figure is the median of all its timed steps.")
    var rounds = 3
    @Option(help: "The PyTorch mirror script.") var torchScript = "benchmarks/maclr_step_torch.py"
    @Flag(help: "Print time and GFLOP/s per conv shape and direction (query and key encoders), beside a bare sgemm of the same shapes.")
    var layers = false
    @OptionGroup var torch: TorchOptions

    func validate() throws {
        guard iterations > 0, rounds > 0 else { throw ValidationError("--iterations and --rounds must be positive") }
    }

    func run() throws {
        engine.apply()
        let r = try Recipe.load(recipe, overrides: overrides)
        var bench = StepBenchmark(recipe: r)
        bench.iterations = iterations; bench.perLayer = layers
        let log = stderrLog
        var python: String?
        if !bench.mirrorable {
            log("(the PyTorch mirror builds a frame-wise Motion pathway or none, the MaCLR loss at its default weights, MCL's alignment loss at its defaults and shuffled key BN only: not run for this recipe)\n")
        } else if let found = torch.python(), FileManager.default.fileExists(atPath: torchScript) {
            python = found
        } else if !torch.noTorch {
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
        print(String(format: "\n%@: MaCLR step, batch %d, %d frames, %dx%d, %d threads (GEMMs: %@)", recipe, batch,
                     r.data.clipFrames, r.data.crop, r.data.crop, engine.threads, Runtime.gemmDescription))
        print("median of \(rounds) round(s) x \(iterations) timed steps each")
        print("| | step | clip pairs/s | peak RSS | ours faster by |")
        print("|---|---|---|---|---|")
        print(String(format: "| maclr | %.1f ms | %.2f | %.2f GiB | |", ourStep * 1e3, Double(batch) / ourStep, ourRSS))
        let plainStep = plainTimes.isEmpty ? nil : median(plainTimes)
        if let p = plainStep {
            print(String(format: "| maclr without the alignment loss | %.1f ms | %.2f | %.2f GiB | |", p * 1e3, Double(batch) / p, plainRSS))
        }
        for m in mirrored {
            guard !m.failed, !m.times.isEmpty else { print("| \(m.name) | failed | | | |"); continue }
            let s = median(m.times)
            print(String(format: "| %@ | %.1f ms | %.2f | %.2f GiB | %.2fx |", m.name, s * 1e3, Double(batch) / s, m.rss ?? 0, s / ourStep))
        }
        if let p = plainStep {
            print(String(format: "the alignment loss (double backward) costs %.2fx the step's time and %.2fx its peak RSS", ourStep / p, ourRSS / max(plainRSS, 1e-9)))
        }
    }
}

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Forward and training-step time of a torchvision video ResNet, beside PyTorch's when it is installed.")

    @Option(help: "Network.") var arch: Architecture = .r2plus1d18
    @Flag(help: "Two networks (RGB and 2-channel flow) with symmetric InfoNCE between them: the MaCLR-shaped step.")
    var twoPathways = false
    @Option(help: "Clips per batch.") var batch = 8
    @Option(help: "Frames per clip.") var frames = 8
    @Option(help: "Height and width.") var size = 64
    @OptionGroup var engine: EngineFlags
    @Option(help: "Timed iterations (median reported).") var iterations = 7
    @Option(help: "Untimed warm-up iterations.") var warmup = 2
    @Flag(help: "Print time and GFLOP/s per conv shape and direction, beside a bare sgemm of the same shapes.") var layers = false
    @Option(help: "A nominal fp32 FMA peak in GFLOP/s to print the step's fraction of, beside the peak measured in the run.") var peak: Double?
    @Option(help: "The PyTorch reference script.") var torchScript = "benchmarks/torch_reference.py"
    @OptionGroup var torch: TorchOptions
    @Option(help: "Write the figures to this JSON file.") var json: String?

    func validate() throws {
        guard batch > 0, frames > 0, size >= 16, iterations > 0, warmup >= 0 else {
            throw ValidationError("--batch, --frames and --iterations must be positive and --size at least 16")
        }
    }

    func run() throws {
        engine.apply()
        let threads = engine.threads
        var bench = EngineBenchmark()
        bench.kind = arch
        bench.twoPathways = twoPathways
        bench.batch = batch; bench.frames = frames; bench.size = size
        bench.iterations = iterations; bench.warmup = warmup; bench.perLayer = layers
        let log = stderrLog
        // PyTorch first: a child spawned after our peak would inherit our RSS high-water mark.
        var torchDefault: [String: Any]?, torchTuned: [String: Any]?
        if let python = torch.python(), FileManager.default.fileExists(atPath: torchScript) {
            let script = torchScript
            log("PyTorch reference (\(python)), default:\n")
            torchDefault = runTorchReference(python: python, script: script, kind: bench.kind, twoPathways: twoPathways, batch: batch, frames: frames, size: size,
                                             threads: threads, channelsLast: false, tuned: false)
            log("PyTorch reference, tuned (channels_last_3d, malloc keeps buffers):\n")
            torchTuned = runTorchReference(python: python, script: script, kind: bench.kind, twoPathways: twoPathways, batch: batch, frames: frames, size: size,
                                           threads: threads, channelsLast: true, tuned: true)
        } else if !torch.noTorch {
            log("(PyTorch reference not found: pass --torch-python and --torch-script to compare)\n")
        }
        let ours = bench.run(log: log)
        var rows: [(String, Double, Double?, Double?)] = []   // (figure, ours s, torch default s, torch tuned s)
        func median(_ r: [String: Any]?, _ key: String) -> Double? { (r?[key] as? [String: Any])?["median_s"] as? Double }
        rows.append(("forward (eval)", ours.forwardSeconds, median(torchDefault, "fwd_nograd"), median(torchTuned, "fwd_nograd")))
        rows.append(("forward (train)", ours.forwardTrainSeconds, median(torchDefault, "fwd_train"), median(torchTuned, "fwd_train")))
        rows.append(("training step", ours.trainStepSeconds, median(torchDefault, "train_step"), median(torchTuned, "train_step")))

        print(String(format: "\n%@%@, batch %d, %d frames, %dx%d, %d threads (GEMMs: %@)", arch.rawValue, twoPathways ? " x2 (RGB + flow, InfoNCE)" : "", batch, frames, size, size, threads, Runtime.gemmDescription))
        print("| figure | ours | clips/s | GFLOP/s (excl. pad) | PyTorch default | ours / default | PyTorch tuned | ours / tuned |")
        print("|---|---|---|---|---|---|---|---|")
        for (name, s, d, t) in rows {
            let flops = name == "training step" ? ours.trainGFLOPsNoPad : ours.forwardGFLOPsNoPad
            func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0 * 1e3) } ?? "-" }
            func speedup(_ v: Double?) -> String { v.map { String(format: "%.2fx", $0 / s) } ?? "-" }
            print("| \(name) | \(ms(s)) | \(String(format: "%.2f", Double(batch) / s)) | \(String(format: "%.1f", flops / s)) | \(ms(d)) | \(speedup(d)) | \(ms(t)) | \(speedup(t)) |")
        }
        print(String(format: "peak RSS: ours %.2f GiB", ours.peakRSSGiB)
              + ((torchDefault?["peak_rss_GiB"] as? Double).map { String(format: ", PyTorch default %.2f GiB", $0) } ?? "")
              + ((torchTuned?["peak_rss_GiB"] as? Double).map { String(format: ", tuned %.2f GiB", $0) } ?? ""))
        let achieved = ours.trainGFLOPsNoPad / ours.trainStepSeconds, measured = ours.machinePeak
        print(String(format: "training step: %.1f GFLOP/s excl. pad = %.0f%% of the FMA peak measured in this run (%.0f GFLOP/s: an FMA-only loop on %d threads, before and after)%@; %.0f%% of a bare OpenBLAS sgemm 1024^3 in this run (%.0f GFLOP/s)",
                     achieved, 100 * achieved / measured.fmaGFLOPs, measured.fmaGFLOPs, threads,
                     peak.map { String(format: ", %.0f%% of the nominal %.0f (--peak)", 100 * achieved / $0, $0) } ?? "",
                     100 * achieved / measured.sgemmGFLOPs, measured.sgemmGFLOPs))
        print("(ours / PyTorch > 1 means we are faster)")
        if let json {
            var out: [String: Any] = ["ours": (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(ours))) ?? [:],
                                      "arch": arch.rawValue, "batch": batch, "frames": frames, "size": size, "threads": threads,
                                      "gemm": Runtime.gemmDescription, "conv_paths": engine.convPaths.rawValue]
            if let torchDefault { out["torch_default"] = torchDefault }
            if let torchTuned { out["torch_tuned"] = torchTuned }
            try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
    }
}

struct ConvBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv",
        abstract: "One conv shape's forward, input and weight gradients under each conv path of the engine, the paths taking turns.")
    @Option(help: "Input shape N,T,H,W,C.") var input = "8,8,28,28,16"
    @Option(help: "Weight shape O,kT,kH,kW,C.") var weight = "36,1,3,3,16"
    @Option(help: "Stride T,H,W.") var stride = "1,1,1"
    @Option(help: "Padding T,H,W.") var padding = "0,1,1"
    @Option(help: "Rounds (each path once per round; medians reported).") var rounds = 5
    @Option(help: "Calls per path and round.") var iterations = 5
    @OptionGroup var engine: EngineFlags

    /// `count` integers separated by commas, each at least `minimum`.
    func shape(_ text: String, _ count: Int, _ name: String, minimum: Int = 1) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == count, values.allSatisfy({ ($0 ?? Int.min) >= minimum }) else {
            throw ValidationError("--\(name) '\(text)': expected \(count) integers of at least \(minimum), separated by commas")
        }
        return values.map { $0! }
    }

    func validate() throws {
        guard rounds > 0, iterations > 0 else { throw ValidationError("--rounds and --iterations must be positive") }
        let (x, w) = (try shape(input, 5, "input"), try shape(weight, 5, "weight"))
        _ = try shape(stride, 3, "stride")
        let p = try shape(padding, 3, "padding", minimum: 0)
        guard x[4] == w[4] else { throw ValidationError("--input has \(x[4]) channels but --weight expects \(w[4])") }
        for d in 0..<3 where x[d + 1] + 2 * p[d] < w[d + 1] {
            throw ValidationError("--weight kernel \(w[1...3].map(String.init).joined(separator: "x")) does not fit --input \(x[1...3].map(String.init).joined(separator: "x")) with --padding \(padding)")
        }
    }

    func run() throws {
        engine.apply()
        let (x, w) = (try shape(input, 5, "input"), try shape(weight, 5, "weight"))
        var bench = ConvBenchmark(input: x, weight: w, stride: try shape(stride, 3, "stride"), padding: try shape(padding, 3, "padding", minimum: 0))
        bench.rounds = rounds; bench.iterations = iterations
        let rows = bench.run(log: stderrLog)
        print("conv input \(x) weight \(w) stride \(stride) padding \(padding), \(engine.threads) threads, median of \(rounds) rounds")
        print("| engine | direction | path taken | ms per call | GFLOP/s |")
        print("|---|---|---|---|---|")
        for r in rows {
            print(String(format: "| %@ | %@ | %@ | %.3f | %.1f |", r.configuration, r.direction.rawValue, r.path.rawValue, r.milliseconds, r.gflops))
        }
    }
}

struct DataBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data",
        abstract: "Loader throughput (clip pairs/s, with and without augmentation) and peak memory at two dataset sizes; raw clip reads beside h5py's.")
    @Option(help: "Videos in the smaller dataset (the larger has 4x).") var videos = 40
    @Option(help: "Frames per video.") var frames = 64
    @Option(help: "Frame size of the shards.") var size = 112
    @Option(help: "Clips are cropped and resized to crop x crop.") var crop = 96
    @Option(help: "Batches timed per configuration.") var batches = 30
    @Option(help: "Loader threads.") var workers = 2
    @Option(help: "Scratch folder for the generated datasets.") var scratch = NSTemporaryDirectory()
    @Option(help: "The h5py reader of the same clips.") var h5pyScript = "benchmarks/h5py_clips.py"
    @Option(help: "Python with h5py (default: $MACLR_TORCH_PYTHON, /opt/torchref/bin/python, python3).") var python: String?
    @Flag(help: "Skip h5py.") var noH5py = false

    func validate() throws {
        guard videos > 0, frames >= 16, size >= 16, batches > 0, workers > 0, (8...size).contains(crop) else {
            throw ValidationError("--videos, --batches and --workers must be positive, --frames and --size at least 16, --crop 8...--size")
        }
    }

    func run() throws {
        var b = DataBenchmark()
        b.videosSmall = videos; b.videosLarge = 4 * videos; b.framesPerVideo = frames; b.size = size; b.batches = batches; b.workers = workers
        b.sampling.height = crop; b.sampling.width = crop
        let found = noH5py || !FileManager.default.fileExists(atPath: h5pyScript) ? nil : findPython(python, fallbacks: ["/usr/bin/python3"])
        let result = try b.run(scratch: URL(fileURLWithPath: scratch), python: found, script: h5pyScript, log: stderrLog)
        print("\nraw clip reads, RGB + flow, \(b.sampling.frames) frames at stride \(b.sampling.stride) from \(size)x\(size) shards, one thread:")
        print("| read | maclr clips/s | h5py clips/s | maclr / h5py |")
        print("|---|---|---|---|")
        for p in result.patterns {
            func figure(_ x: Double?) -> String { x.map { String(format: "%.0f", $0) } ?? "-" }
            let ratio = p.ours.flatMap { o in p.h5py.map { String(format: "%.2f", o / $0) } } ?? "-"
            print("| \(p.name) | \(figure(p.ours)) | \(figure(p.h5py)) | \(ratio) |")
        }
        print("\nloader: clips of \(b.sampling.frames) frames (stride \(b.sampling.stride)) cropped to \(b.sampling.width)x\(b.sampling.height), batch \(b.batchSize) pairs, RGB + flow, \(workers) loader threads")
        print("| videos | dataset on disk | augmentation | clip pairs/s | loader CPU per batch | peak RSS |")
        print("|---|---|---|---|---|---|")
        for r in result.rows {
            print(String(format: "| %d | %.2f GiB | %@ | %.1f | %.1f ms | %.3f GiB |", r.videos, r.datasetGiB, r.augmented ? "on" : "off",
                         r.pairsPerSecond, r.cpuMillisecondsPerBatch, r.peakRSSGiB))
        }
    }
}

struct FlowBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "flow",
        abstract: "TV-L1 on frame pairs from a safetensors file (used by benchmarks/tvl1_vs_opencv.py).")
    @Argument(help: "safetensors with i0, i1: (N, H, W) grayscale 0...255.") var pairs: String
    @Argument(help: "Output safetensors with u, v: (N, H, W).") var output: String
    @Option(help: "Threads (pairs in parallel).") var threads = Runtime.cores

    func run() throws {
        let r = try benchmarkFlow(pairs: URL(fileURLWithPath: pairs), output: URL(fileURLWithPath: output), threads: threads, log: stderrLog)
        print(String(format: "{\"seconds\": %.4f, \"pairs\": %d}", r.seconds, r.pairs))
    }
}
