import Foundation
import Pathways
import Tensor

/// `maclr bench step`: one pretraining step of a recipe's MaCLR model (query pathways, momentum
/// keys in shuffled sub-batches, queues, loss, backward, optimiser, EMA, enqueue) on random clips
/// of the recipe's shapes, without data loading; and the same step in PyTorch
/// (benchmarks/maclr_step_torch.py) when a Python with torch is available.
public struct StepBenchmark {
    public var recipe: Recipe
    public var warmup = 3, iterations = 10
    public var perLayer = false
    public init(recipe: Recipe) { self.recipe = recipe }

    public struct Result: Codable {
        /// Every timed step's seconds, and their median.
        public var stepTimes: [Double]
        public var stepSeconds: Double { median(stepTimes) }
        public var peakRSSGiB: Double
    }

    var batch: Int { recipe.int("optim.batch_size") }

    public func run(log: (String) -> Void) -> Result {
        let model = MaCLRModel(recipe.modelConfig, seed: 0)
        let optimizer = recipe.makeOptimizer(model.parameters())
        let (t, crop) = (recipe.int("data.clip_frames"), recipe.int("data.crop"))
        var rng = RandomGenerator(seed: 0)
        let rgb = (0..<2).map { _ in Tensor.randn([batch, t, crop, crop, 3], rng: &rng) }
        let motion = model.motion == nil ? nil
            : (0..<2).map { _ in Tensor.randn([batch, t, crop, crop, recipe.motionRepresentation.channels], rng: &rng) }
        let times = timedSeconds("maclr step", warmup: warmup, iterations: iterations, {
            ConvStats.enabled = perLayer
            optimizer.zeroGrad()
            let terms = model.losses(rgbA: rgb[0], rgbB: rgb[1], motionA: motion?[0], motionB: motion?[1], rng: &rng)
            terms.total.backward()
            ConvStats.enabled = false
            optimizer.step()
            model.afterStep()
        }, afterWarmup: { ConvStats.reset() }, log: log)
        if perLayer { printConvLayers(log: log, steps: iterations, stepSeconds: median(times)) }
        return Result(stepTimes: times, peakRSSGiB: peakRSSGiB())
    }

    /// The arguments that make benchmarks/maclr_step_torch.py build the same model and step.
    public var mirrorArguments: [String] {
        func list(_ key: String) -> [String] { recipe.ints(key).map(String.init) }
        return ["--arch", recipe.string("model.arch"), "--width", "\(recipe.double("model.width"))"]
            + ["--blocks"] + list("model.blocks")
            + ["--motion-width", "\(recipe.double("model.motion_width"))", "--motion-blocks"] + list("model.motion_blocks")
            + ["--motion-channels", "\(recipe.motionRepresentation.channels)",
               "--hidden", "\(recipe.int("model.head_hidden"))", "--embedding", "\(recipe.int("model.embedding"))",
               "--queue", "\(recipe.int("model.queue_size"))", "--momentum", "\(recipe.double("model.momentum"))",
               "--batch", "\(batch)", "--frames", "\(recipe.int("data.clip_frames"))", "--crop", "\(recipe.int("data.crop"))",
               "--optimizer", recipe.string("optim.optimizer"), "--threads", "\(Engine.threads)",
               "--warmup", "\(warmup)", "--iters", "\(iterations)"]
    }

    /// Runs the PyTorch mirror (default, or tuned: channels-last and a malloc that keeps its
    /// buffers) and returns its JSON figures, or nil when it cannot run.
    public func runMirror(python: String, script: String, tuned: Bool) -> [String: Any]? {
        runPythonBenchmark(python: python, arguments: [script] + mirrorArguments + (tuned ? ["--tuned"] : []), tuned: tuned)
    }
}
