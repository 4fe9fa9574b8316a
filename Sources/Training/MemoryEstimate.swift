import Backbones
import DataHDF5
import Foundation
import Pathways
import Tensor

/// A recipe's peak memory, known before a run spends it: one training step is taken at batch 2
/// and 4 on random clips of a small shape (the recipe's own when it is small), the engine's
/// buffers counted each time; the part that grows with the batch is scaled to the recipe's batch
/// and clip size (activations kept for backward, double backward where on), the rest (weights,
/// their gradients, optimiser state, momentum encoders, queues) is taken as it is. The loader's
/// batches in flight and the process's own memory are added.
public struct MemoryEstimate: Sendable, Equatable {
    /// Bytes, by what holds them.
    public var process: Int, model: Int, activations: Int, loader: Int
    /// The test's forward pass over a video's views (`--eval`, and fine-tuning's test), whose
    /// buffers the engine keeps beside the training step's.
    public var evaluation = 0
    public var total: Int { process + model + activations + loader + evaluation }
    /// The recipe's keys the estimate grows with, the largest part first.
    public var drivingKeys: [String]
    /// Whether this is only the lower bound the recipe's shapes give (`lowerBound`): taken when
    /// that alone passes what the machine has, so no step is probed.
    public var isLowerBound = false

    /// The estimate for `recipe`; when the lower bound alone passes `available` bytes, that bound.
    public static func of(_ recipe: Recipe, available: Int? = availableBytes()) throws -> MemoryEstimate {
        let (t, crop, batch) = (recipe.data.clipFrames, recipe.data.crop, recipe.optim.batchSize)
        let (t0, s0) = (min(t, 8), min(crop, 64))
        // the engine's idle buffers (an earlier run's in this process) are not this run's, nor
        // the heap they leave free: given back, so a sweep's later runs are not counted twice
        BufferPool.shared.drain()
        returnFreeHeapToTheSystem()
        let base = residentBytes()
        let loader = loaderBytes(recipe)
        let keys = ["optim.batch_size", "data.crop", "data.clip_frames", "model.width"]
        let floor = lowerBound(recipe)
        if let available, base + floor + loader > available {
            return MemoryEstimate(process: base, model: 0, activations: floor, loader: loader, drivingKeys: keys, isLowerBound: true)
        }
        let small = try probe(recipe, batch: 2, frames: t0, crop: s0), large = try probe(recipe, batch: 4, frames: t0, crop: s0)
        let perSample = max(0, large - small) / 2
        let model = max(0, small - 2 * perSample)
        let scale = Double(t * crop * crop) / Double(t0 * s0 * s0)
        let activations = Int(Double(perSample) * scale * Double(batch))
        let views = recipe.eval.clipsPerVideo * recipe.eval.cropsPerClip
        let evaluation = Int(Double(try evaluationProbe(recipe, views: views, frames: t0, crop: s0)) * scale)
        let parts = [(activations, keys), (model, ["model.width", "model.queue_size"]), (loader, ["data.loader_workers", "optim.batch_size"])]
        var driving: [String] = []
        for (_, names) in parts.sorted(by: { $0.0 > $1.0 }) { for n in names where !driving.contains(n) { driving.append(n) } }
        return MemoryEstimate(process: base, model: model, activations: activations, loader: loader, evaluation: evaluation,
                              drivingKeys: driving)
    }

    /// Engine bytes of the visual encoder's forward pass, without a tape, on `views` clips.
    static func evaluationProbe(_ recipe: Recipe, views: Int, frames: Int, crop: Int) throws -> Int {
        var config = recipe.visualConfig
        config.classes = nil
        let net = VideoResNet(config, seed: 0)
        net.eval()
        var rng = RandomGenerator(seed: 0)
        let clips = Tensor.randn([views, frames, crop, crop, 3], rng: &rng)
        BufferPool.shared.drain()
        let before = BufferPool.shared.freshBytes
        _ = noGrad { net.features(clips) }
        let used = BufferPool.shared.freshBytes - before
        BufferPool.shared.drain()
        return used
    }

    /// Batches in flight in the loader: the queue's depth plus one being made per thread, each
    /// two clips of RGB and motion input and the alignment target, as floats.
    static func loaderBytes(_ recipe: Recipe) -> Int {
        let (t, crop, batch) = (recipe.data.clipFrames, recipe.data.crop, recipe.optim.batchSize)
        let channels = 3 + (recipe.model.motionPathway == .none || recipe.supervised ? 0 : recipe.data.motionInput.channels) + (recipe.aligned ? 1 : 0)
        return (4 + recipe.loaderThreads) * 2 * batch * t * crop * crop * channels * 4
    }

    /// What a step holds at least, from the shapes alone (no model is built): the batch's input
    /// clips and the stem's output of each encoder that sees them (query and key when contrastive).
    static func lowerBound(_ recipe: Recipe) -> Int {
        let (t, crop, batch) = (recipe.data.clipFrames, recipe.data.crop, recipe.optim.batchSize)
        let clips = recipe.supervised ? 1 : 2
        let inputs = clips * batch * t * crop * crop * 3 * 4
        let stem = clips * batch * t * (crop / 2) * (crop / 2) * recipe.visualConfig.stagePlanes[0] * 4
        return inputs + stem
    }

    /// Engine bytes one step takes at `batch` pairs of `frames` x `crop` clips: weights, optimiser
    /// state and every buffer of the step, counted as the buffer pool allocates them afresh.
    static func probe(_ recipe: Recipe, batch: Int, frames: Int, crop: Int) throws -> Int {
        var r = recipe
        try r.set([("optim.batch_size", batch), ("data.clip_frames", frames), ("data.crop", crop)])
        BufferPool.shared.drain()
        let before = BufferPool.shared.freshBytes
        try withExtendedLifetime(try Learner(r, classes: 10, queryBatchNormGroups: 1, collective: SingleProcess())) { learner in
            let optimizer = r.makeOptimizer(learner.parameters)
            var rng = RandomGenerator(seed: 0)
            let clip = [batch, frames, crop, crop]
            let rgb = (0..<2).map { _ in Tensor.randn(clip + [3], rng: &rng) }
            switch learner {
            case .contrastive(let m):
                let motion = r.model.motionPathway == .none ? nil
                    : (0..<2).map { _ in Tensor.randn(clip + [r.data.motionInput.channels], rng: &rng) }
                let target = r.aligned ? Tensor.randn(clip, rng: &rng).relu() : nil
                let terms = m.losses(rgbA: rgb[0], rgbB: rgb[1], motionA: motion?[0], motionB: motion?[1], alignmentTarget: target,
                                     alignmentWeight: r.aligned ? 1 : 0, rng: &rng)
                optimizer.zeroGrad()
                terms.total.backward()
                optimizer.step()
                m.afterStep()
            case .supervised(let net):
                net.train()
                let loss = softmaxCrossEntropy(net(rgb[0]), labels: (0..<batch).map { $0 % 10 })
                optimizer.zeroGrad()
                loss.backward()
                optimizer.step()
            }
        }
        let used = BufferPool.shared.freshBytes - before
        BufferPool.shared.drain()
        return used
    }

    /// This process's resident memory now (VmRSS), in bytes.
    static func residentBytes() -> Int { procStatus("VmRSS:") ?? 0 }

    /// glibc's malloc_trim(0) where the C library has it (looked up: Swift's Glibc module leaves it out).
    static func returnFreeHeapToTheSystem() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        typealias Trim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// The most this process has held resident (VmHWM), in bytes.
    public static func peakResidentBytes() -> Int { procStatus("VmHWM:") ?? 0 }

    /// The memory this machine can give a new run now (MemAvailable), in bytes; nil where unknown.
    public static func availableBytes() -> Int? { procStatus("MemAvailable:", file: "/proc/meminfo") }

    static func procStatus(_ field: String, file: String = "/proc/self/status") -> Int? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            let kib = line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            return kib.map { $0 * 1024 }
        }
        return nil
    }

    /// One line: the total and its parts, in GiB.
    public var summary: String {
        func gib(_ b: Int) -> String { String(format: "%.2f", Double(b) / Double(1 << 30)) }
        if isLowerBound { return "memory: at least \(gib(total)) GiB at peak (the batch's clips and the stem's output \(gib(activations)), loader \(gib(loader)), process \(gib(process)))" }
        return "memory: about \(gib(total)) GiB at peak (activations \(gib(activations)), weights, gradients, optimiser state and queues \(gib(model)), loader \(gib(loader)), test views \(gib(evaluation)), process \(gib(process)))"
    }

    /// The recipe's estimate, checked against what this machine has now.
    public static func checked(_ recipe: Recipe) throws -> MemoryEstimate {
        let available = availableBytes()
        let estimate = try of(recipe, available: available)
        try estimate.check(available: available, source: recipe.source)
        return estimate
    }

    /// Throws, naming the estimate, what the machine has and the keys that drive it, when the
    /// run cannot fit in `available` bytes.
    public func check(available: Int?, source: String) throws {
        guard let available, total > available else { return }
        func gib(_ b: Int) -> String { String(format: "%.1f", Double(b) / Double(1 << 30)) }
        throw TrainingError("\(source): needs \(isLowerBound ? "at least" : "about") \(gib(total)) GiB at peak, and this machine has \(gib(available)) GiB available; lower \(drivingKeys.prefix(4).joined(separator: ", "))")
    }
}
