import Backbones
import Foundation
import Pathways
import Tensor
import Training

/// `maclr bench step`: one training step of a recipe: its MaCLR model (query pathways, momentum
/// keys in shuffled sub-batches, queues, loss, backward, optimiser, EMA, enqueue), or for a
/// supervised recipe (fine-tuning) its classifier (encoder, dropout, fc, cross-entropy), on random clips
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

    var batch: Int { recipe.optim.batchSize }

    /// Classes of the classifier a supervised (fine-tuning) recipe trains: UCF101's.
    public var classes = 101

    public func run(log: (String) -> Void) -> Result {
        let (t, crop) = (recipe.data.clipFrames, recipe.data.crop)
        var rng = RandomGenerator(seed: 0)
        let rgb = (0..<2).map { _ in Tensor.randn([batch, t, crop, crop, 3], rng: &rng) }
        let step: () -> Void
        if recipe.supervised {
            // fine-tuning: the whole encoder, dropout, a linear classifier, cross-entropy
            var config = recipe.visualConfig
            config.classes = classes
            let net = VideoResNet(config, seed: 0)
            net.initialize(recipe.model.`init`, seed: 0)
            net.requireGradients()
            net.train()
            let optimizer = recipe.makeOptimizer(net.parameters())
            let labels = (0..<batch).map { $0 % classes }
            let dropout = Float(recipe.model.dropout)
            step = {
                optimizer.zeroGrad()
                let logits = net.fc!(net.features(rgb[0]).dropout(dropout, training: true, rng: &rng))
                softmaxCrossEntropy(logits, labels: labels).backward()
                optimizer.step()
            }
        } else {
            let model = MaCLRModel(recipe.modelConfig, seed: 0)
            let optimizer = recipe.makeOptimizer(model.parameters())
            let motion = model.motion == nil ? nil
                : (0..<2).map { _ in Tensor.randn([batch, t, crop, crop, recipe.data.motionInput.channels], rng: &rng) }
            // MCL's alignment target (motion boundaries of clip A) when the recipe has the loss
            let target = recipe.loss.alignment ? Tensor.uniform([batch, t, crop, crop], low: 0, high: 1, rng: &rng) : nil
            step = {
                optimizer.zeroGrad()
                let terms = model.losses(rgbA: rgb[0], rgbB: rgb[1], motionA: motion?[0], motionB: motion?[1], alignmentTarget: target,
                                         alignmentWeight: Float(recipe.loss.alignmentWeight), rng: &rng)
                terms.total.backward()
                optimizer.step()
                model.afterStep()
            }
        }
        let timer = ConvTimer()
        timer.recording = false
        let times = timedSeconds("maclr step", warmup: warmup, iterations: iterations, {
            if perLayer { timer.observing(step) } else { step() }
        }, afterWarmup: { timer.reset(); timer.recording = true }, log: log)
        if perLayer {
            timer.recording = false
            printConvLayers(timer, log: log, steps: iterations, stepSeconds: median(times))
        }
        return Result(stepTimes: times, peakRSSGiB: peakRSSGiB())
    }

    /// Whether the PyTorch mirror builds this recipe's model: a supervised classifier, or a
    /// frame-wise Motion pathway or none, the MaCLR loss with its weights and temperature (and
    /// MCL's alignment loss at any conv, with Grad-CAM weights times the gradient as MCL's code
    /// has them), shuffled key BN.
    public var mirrorable: Bool {
        let l = recipe.loss
        if recipe.supervised { return true }
        return [.frames, .none].contains(recipe.model.motionPathway) && l.objective == .maclr
            && recipe.model.keyBn == KeyBatchNorm.shuffledSubBatches
            && (!l.alignment || l.alignmentWeighting == .gradient)
    }

    /// The conv the alignment loss aligns, by torchvision's name ("last" resolved).
    var alignmentLayer: String {
        let layer = recipe.loss.alignmentLayer
        return layer != "last" ? layer : VideoResNetConfig(kind: recipe.model.arch, blocksPerStage: recipe.model.blocks).capturableLayers.last!
    }

    /// The arguments that make benchmarks/maclr_step_torch.py build the same model and step.
    public var mirrorArguments: [String] {
        let m = recipe.model, l = recipe.loss
        return ["--arch", m.arch.rawValue, "--width", "\(m.width)"]
            + ["--blocks"] + m.blocks.map(String.init)
            + ["--motion-width", "\(m.motionWidth)", "--motion-blocks"] + m.motionBlocks.map(String.init)
            + ["--motion-channels", "\(recipe.data.motionInput.channels)",
               "--hidden", "\(m.headHidden)", "--embedding", "\(m.embedding)",
               "--queue", "\(m.queueSize)", "--momentum", "\(m.momentum)",
               "--batch", "\(batch)", "--frames", "\(recipe.data.clipFrames)", "--crop", "\(recipe.data.crop)",
               "--optimizer", recipe.optim.optimizer.rawValue, "--threads", "\(Engine.threads)",
               "--warmup", "\(warmup)", "--iters", "\(iterations)"]
            + (recipe.model.motionPathway == .none ? ["--no-motion"] : [])
            + ["--temperature", "\(l.temperature)", "--cross-weight", "\(l.crossModalWeight)", "--motion-intra-weight", "\(l.motionIntraWeight)"]
            + (l.alignment ? ["--alignment", "--alignment-layer", alignmentLayer, "--alignment-weight", "\(l.alignmentWeight)",
                              "--alignment-terms", "\(l.alignmentSpatiotemporal)", "\(l.alignmentTemporal)", "\(l.alignmentSpatial)"] : [])
            + (recipe.supervised ? ["--supervised", "\(classes)", "--dropout", "\(recipe.model.dropout)"] : [])
    }

    /// Runs the PyTorch mirror (default, or tuned: channels-last and a malloc that keeps its
    /// buffers) and returns its JSON figures, or nil when it cannot run.
    public func runMirror(python: String, script: String, tuned: Bool) -> [String: Any]? {
        runPythonBenchmark(python: python, arguments: [script] + mirrorArguments + (tuned ? ["--tuned"] : []), tuned: tuned)
    }
}
