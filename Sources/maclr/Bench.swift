import ArgumentParser
import Benchmarks
import Evaluation
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

struct StepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "One pretraining step of a recipe's MaCLR model on random clips, beside the same step in PyTorch (benchmarks/maclr_step_torch.py).")

    @Argument(help: "Recipe YAML file.") var recipe = "Recipes/quickstart.yaml"
    @OptionGroup var set: RecipeOverrides
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
        var comparison = StepComparison(recipe: try Recipe.load(recipe, overrides: set.overrides), recipeName: recipe, threads: engine.threads)
        comparison.benchmark.iterations = iterations; comparison.benchmark.perLayer = layers; comparison.rounds = rounds
        comparison.torchPython = torch.python(); comparison.lookForTorch = !torch.noTorch; comparison.torchScript = torchScript
        try comparison.run(out: { print($0) }, log: stderrLog)
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
        var comparison = EngineComparison(threads: engine.threads, convPaths: engine.convPaths.rawValue)
        comparison.benchmark.kind = arch; comparison.benchmark.twoPathways = twoPathways
        comparison.benchmark.batch = batch; comparison.benchmark.frames = frames; comparison.benchmark.size = size
        comparison.benchmark.iterations = iterations; comparison.benchmark.warmup = warmup; comparison.benchmark.perLayer = layers
        comparison.peak = peak
        comparison.torchPython = torch.python(); comparison.lookForTorch = !torch.noTorch; comparison.torchScript = torchScript
        comparison.json = json
        try comparison.run(out: { print($0) }, log: stderrLog)
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
        var bench = ConvBenchmark(input: try shape(input, 5, "input"), weight: try shape(weight, 5, "weight"), stride: try shape(stride, 3, "stride"),
                                  padding: try shape(padding, 3, "padding", minimum: 0))
        bench.rounds = rounds; bench.iterations = iterations
        bench.report(threads: engine.threads, out: { print($0) }, log: stderrLog)
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
        try b.report(scratch: URL(fileURLWithPath: scratch), python: found, script: h5pyScript, out: { print($0) }, log: stderrLog)
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
