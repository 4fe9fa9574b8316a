import Backbones
import DataHDF5
import Foundation
import LongWork
import Losses
import Pathways
import Tensor

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What a recipe builds: the contrastive model or, for the supervised objective, a classifier.
enum Learner {
    case contrastive(MaCLRModel)
    case supervised(VideoResNet)

    /// The recipe's model, its query BN over `queryBatchNormGroups` groups of the global batch,
    /// keys shuffled over the processes of `collective`; a classifier of `classes` when supervised.
    init(_ recipe: Recipe, classes: Int, queryBatchNormGroups: Int, collective: Collective) throws {
        let seed = UInt64(recipe.seed)
        if recipe.supervised {
            var c = recipe.visualConfig
            c.classes = max(1, classes)
            let net = VideoResNet(c, seed: seed)
            net.initialize(recipe.model.`init`, seed: seed)
            net.requireGradients()
            self = .supervised(net)
            return
        }
        let processes = collective.size, batch = recipe.optim.batchSize
        var config = recipe.modelConfig
        config.queryBatchNormGroups = queryBatchNormGroups
        config.synchronizedBatchNorm = recipe.model.syncBn
        // shuffle-BN over processes: each embeds whole key sub-batches
        config.keySubBatches = max(config.keySubBatches, processes)
        let model = MaCLRModel(config, seed: seed)
        model.collective = collective
        let groups = model.keyGroups(globalBatch: batch)
        if processes > 1, recipe.model.keyBn == .shuffledSubBatches, groups % processes != 0 || batch % groups != 0 {
            throw TrainingError("optim.batch_size \(batch) cannot be cut into \(groups) equal key sub-batches, whole ones on each of \(processes) processes; use a multiple of \(2 * processes)")
        }
        self = .contrastive(model)
    }

    /// Modules whose state a checkpoint holds, by name.
    var modules: [(String, Module)] {
        switch self {
        case .contrastive(let m):
            var list: [(String, Module)] = [("visual", m.visual), ("visual_key", m.visualKey)]
            if let q = m.motion, let k = m.motionKey { list += [("motion", q), ("motion_key", k)] }
            return list
        case .supervised(let net): return [("visual", net)]
        }
    }

    var parameters: [Parameter] {
        switch self {
        case .contrastive(let m): return m.parameters()
        case .supervised(let net): return net.parameters().map { Parameter(name: "visual." + $0.name, tensor: $0.tensor, decays: $0.decays) }
        }
    }

    /// The visual encoder as a stand-alone network (for export and evaluation).
    var visualEncoder: Module {
        switch self {
        case .contrastive(let m): return m.visual.encoder
        case .supervised(let net): return net
        }
    }
}

/// Measures the visual encoder while it trains: figures by name (fractions), logged, written to
/// metrics.jsonl and TensorBoard. It must leave the encoder as it found it (in training mode).
public protocol TrainingMonitor {
    func measure(_ encoder: VideoResNet) throws -> [String: Double]
}

/// `maclr pretrain`: runs a recipe, checkpointing and resuming.
public final class Trainer {
    public let recipe: Recipe
    /// The run's peak memory as estimated before it started.
    public let memoryEstimate: MemoryEstimate
    public let folder: RunFolder
    let dataset: ShardDataset
    let sampler: ClipSampler
    let learner: Learner
    let optimizer: Optimizer
    let schedule: WarmupCosineSchedule
    public private(set) var step = 0
    var rng: RandomGenerator
    var loaderPosition = LoaderPosition()
    /// Doubts about the recipe for this dataset, printed when the run starts.
    public private(set) var warnings: [String] = []
    /// Checkpoint the run resumed from, if any.
    public private(set) var resumedFrom: URL?
    /// The data-parallel processes of this run; process 0 writes checkpoints, metrics and logs.
    public let collective: Collective
    var isLeader: Bool { collective.rank == 0 }

    /// With `collective` of several processes, each trains on its slice of every global batch
    /// (`optim.batch_size` stays the global batch) and gradients are averaged over them.
    /// `memoryEstimate`: the recipe's, when the caller has made and checked it already.
    public init(recipe: Recipe, fresh: Bool = false, collective: Collective = SingleProcess(), memoryEstimate: MemoryEstimate? = nil) throws {
        self.recipe = recipe
        self.collective = collective
        // a run that cannot fit is refused before it takes the machine's memory
        self.memoryEstimate = try memoryEstimate ?? MemoryEstimate.checked(recipe)
        folder = RunFolder(path: recipe.train.output)
        dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
        let videos = try Self.trainingVideos(recipe, in: dataset)
        let bnGroups = try Self.queryBatchNormGroups(recipe, processes: collective.size)
        sampler = Self.sampler(recipe, dataset: dataset, videos: videos, collective: collective)
        learner = try Learner(recipe, classes: dataset.manifest.classes.count, queryBatchNormGroups: bnGroups, collective: collective)
        warnings = Self.queueWarnings(recipe, trainingVideos: videos.count)
        optimizer = recipe.makeOptimizer(learner.parameters)
        schedule = WarmupCosineSchedule(baseLR: Float(recipe.optim.lr), warmupSteps: recipe.optim.warmupSteps, totalSteps: recipe.optim.steps,
                                        minLR: Float(recipe.optim.minLr))
        rng = RandomGenerator(seed: UInt64(recipe.seed) &+ 77)
        try start(fresh: fresh)
    }

    /// The videos of the recipe's split, checked: the flow the recipe needs is there, and there
    /// are at least a batch of them.
    static func trainingVideos(_ recipe: Recipe, in dataset: ShardDataset) throws -> [Int] {
        if recipe.aligned && !dataset.hasFlow {
            throw TrainingError("\(dataset.folder.path): has no flow, but loss.alignment_weight \(recipe.loss.alignmentWeight) needs it (MCL's alignment target is the flow's motion boundaries)")
        }
        if recipe.contrastiveMotion && recipe.data.motionInput != .frameDifference && !dataset.hasFlow {
            throw TrainingError("\(dataset.folder.path): has no flow, but the recipe's Motion pathway needs data.motion_input '\(recipe.data.motionInput.rawValue)' (prepare with flow, or use frame_difference)")
        }
        let videos = try dataset.indices(split: recipe.data.splitName)
        guard videos.count >= recipe.optim.batchSize else {
            throw TrainingError("\(dataset.folder.path): split '\(recipe.data.splitName ?? "all")' has \(videos.count) videos, fewer than optim.batch_size \(recipe.optim.batchSize)")
        }
        return videos
    }

    /// The recipe's clip pairs of `videos`; with several processes, this one's slice of each batch.
    static func sampler(_ recipe: Recipe, dataset: ShardDataset, videos: [Int], collective: Collective) -> ClipSampler {
        let batch = recipe.optim.batchSize
        var sampler = ClipSampler(dataset: dataset, indices: videos, sampling: recipe.sampling, augmentation: recipe.augmentation,
                                  seed: UInt64(recipe.seed), batchSize: batch, withMotion: recipe.contrastiveMotion)
        sampler.withAlignmentTarget = recipe.aligned
        let share = batch / collective.size
        sampler.slice = (collective.rank * share)..<((collective.rank + 1) * share)
        return sampler
    }

    /// A queue longer than about half an epoch holds keys of the very videos whose positives are
    /// being matched: false negatives that push the loss up as it fills.
    static func queueWarnings(_ recipe: Recipe, trainingVideos: Int) -> [String] {
        let queue = recipe.model.queueSize
        guard !recipe.supervised, 2 * queue > trainingVideos else { return [] }
        return ["warning: model.queue_size \(queue) is more than half of the \(trainingVideos) training videos; the queue will hold other clips of the query's own video as negatives (use at most \(max(recipe.optim.batchSize, trainingVideos / 2)))"]
    }

    /// Clears the run folder (`fresh`), or resumes from its newest checkpoint that verifies.
    func start(fresh: Bool) throws {
        try FileManager.default.createDirectory(at: folder.checkpoints, withIntermediateDirectories: true)
        if fresh {
            // process 0 clears the folder; the others start after it has
            if isLeader { try folder.clearForFreshStart() }
            if collective.size > 1 { _ = collective.gather(0) }
            try initializeFromSource()
            return
        }
        // newest first; one that fails verification is named and the one before it used
        for checkpoint in folder.completeCheckpoints().reversed() {
            do {
                try load(checkpoint: checkpoint)
                resumedFrom = checkpoint
                return
            } catch let corrupt as Checkpoint.Corrupt {
                warnings.append("warning: \(corrupt); trying the checkpoint before it")
                skippedCheckpoints.append(checkpoint)
            }
        }
        if skippedCheckpoints.isEmpty { try initializeFromSource() }
        if let newest = skippedCheckpoints.first {
            throw TrainingError("\(folder.checkpoints.path): no checkpoint verifies (the newest, \(newest.lastPathComponent), and \(skippedCheckpoints.count - 1) before it are corrupt); move them away to start over, or use --fresh")
        }
    }

    /// A run that starts (no checkpoint to resume) loads `model.init_from` into its visual
    /// encoder: the classifier of a fine-tuning, or the query and momentum encoders of a
    /// contrastive run (its projection heads start from their random init).
    func initializeFromSource() throws {
        guard let source = recipe.model.initFromPath else { return }
        switch learner {
        case .supervised(let net):
            let loaded = try EncoderWeights.load(into: net, from: source)
            notes.append("visual encoder from \(source): \(loaded); the classifier (fc, \(net.fc?.weight.shape.first ?? 0) classes) starts from its random init")
        case .contrastive(let model):
            guard let encoder = model.visual.encoder as? VideoResNet else { return }
            let loaded = try EncoderWeights.load(into: encoder, from: source)
            model.visualKey.copyState(from: model.visual)
            notes.append("visual encoder from \(source): \(loaded); its momentum copy the same; the projection heads\(model.motion == nil ? "" : " and the Motion pathway") start from their random init")
        }
    }

    /// Measures the visual encoder every `train.monitor_every` steps (process 0 only).
    public var monitor: TrainingMonitor?
    /// The monitor's latest figures, shown on the progress line until the next.
    var lastMonitored: [String: Double] = [:]

    /// What the run says when it starts, besides warnings: where its weights came from.
    public private(set) var notes: [String] = []

    /// Checkpoints that failed verification when the run started, newest first.
    public private(set) var skippedCheckpoints: [URL] = []

    /// The query pathways' BN groups in the global batch (model.bn_groups, 0: one per process),
    /// checked against the processes and the batch.
    static func queryBatchNormGroups(_ recipe: Recipe, processes: Int) throws -> Int {
        let (batch, supervised, aligned) = (recipe.optim.batchSize, recipe.supervised, recipe.aligned)
        guard batch % processes == 0 else {
            throw TrainingError("optim.batch_size \(batch) is not a multiple of the \(processes) processes (each trains on an equal slice of the global batch)")
        }
        if recipe.model.syncBn {
            guard recipe.model.bnGroups <= 1 else {
                throw TrainingError("model.sync_bn takes its statistics over the whole global batch; model.bn_groups \(recipe.model.bnGroups) asks for groups (use 0 or 1 with it)")
            }
            if aligned && processes > 1 {
                throw TrainingError("model.sync_bn with MCL's alignment loss (loss.alignment_weight > 0) over several processes is not available: its double backward has no synchronised BN")
            }
            return processes
        }
        let groups = recipe.model.bnGroups == 0 ? processes : recipe.model.bnGroups
        guard groups % processes == 0, batch % groups == 0 else {
            throw TrainingError("model.bn_groups \(recipe.model.bnGroups) must divide optim.batch_size \(batch) and be a multiple of the \(processes) processes (or use 0 for one group per process, or model.sync_bn for the whole batch)")
        }
        if groups > processes && (supervised || aligned) {
            throw TrainingError("model.bn_groups \(groups) with \(processes) process(es): several BN groups per process are available for contrastive pretraining without the alignment loss only; use 0")
        }
        return groups
    }

    // MARK: - training

    /// A data-wait share above this is warned about: the step is starved.
    static let dataWaitWarning = 0.05

    /// Runs until `optim.steps`, or `stopAfter` more steps (for tests and staged runs).
    @discardableResult
    public func run(stopAfter: Int? = nil, log everyLog: (String) -> Void) throws -> [StepMetrics] {
        let leader = isLeader
        // only process 0 speaks
        func log(_ text: String) { if leader { everyLog(text) } }
        let total = recipe.optim.steps
        let accumulate = recipe.optim.accumulate
        let loader = StreamingLoader(sampler: sampler, position: loaderPosition, workers: recipe.loaderThreads, depth: 4)
        defer { loader.stop() }
        for w in warnings + notes { log(w + "\n") }
        log(memoryEstimate.summary + "\n")
        if let r = resumedFrom { log("resuming from \(r.path) at step \(step)\n") }
        if collective.size > 1 { log("data-parallel: \(collective.size) processes, \(sampler.slice?.count ?? 0) clip pairs each per step\n") }
        if isLeader { folder.trimMetrics(after: step) }
        let events = isLeader ? try TensorBoardWriter(folder: folder.url) : nil
        var history: [StepMetrics] = []
        let end = min(total, step + (stopAfter ?? total))
        let start = DispatchTime.now().uptimeNanoseconds
        let firstStep = step
        var waited: UInt64 = 0, reducing: UInt64 = 0, warnedAboutData = false
        while step < end {
            optimizer.learningRate = schedule.learningRate(at: step)
            optimizer.zeroGrad()
            var sums: [String: Float] = [:]
            for _ in 0..<accumulate {
                let asked = DispatchTime.now().uptimeNanoseconds
                let batch = try loader.next()
                waited += DispatchTime.now().uptimeNanoseconds - asked
                let (loss, values) = lossOf(batch)
                (loss * (1 / Float(accumulate))).backward()
                for (k, v) in values { sums[k, default: 0] += v / Float(accumulate) }
            }
            let reduceStart = DispatchTime.now().uptimeNanoseconds
            averageOverProcesses(&sums)
            reducing += DispatchTime.now().uptimeNanoseconds - reduceStart
            guard sums.values.allSatisfy({ $0.isFinite }) else {
                let last = folder.completeCheckpoints().last?.path ?? "none"
                throw TrainingError("step \(step): loss is not finite (\(sums.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))); stopped, the last good checkpoint is \(last)")
            }
            optimizer.step()
            if case .contrastive(let m) = learner { m.afterStep() }
            step += 1
            loaderPosition = loader.position
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let clipsPerSecond = Double((step - firstStep) * accumulate * sampler.batchSize) / max(elapsed, 1e-9)
            let dataWait = Double(waited) / 1e9 / max(elapsed, 1e-9)
            let allReduce = collective.size > 1 ? Double(reducing) / 1e9 / max(elapsed, 1e-9) : nil
            var monitored: [String: Double] = [:]
            if let monitor, isLeader, recipe.train.monitorEvery > 0, step % recipe.train.monitorEvery == 0 || step == total,
               let encoder = learner.visualEncoder as? VideoResNet {
                monitored = try monitor.measure(encoder)
            }
            let m = StepMetrics(step: step, values: sums, lr: optimizer.learningRate, clipsPerSecond: clipsPerSecond, elapsedSeconds: elapsed,
                                dataWait: dataWait, allReduce: allReduce, monitor: monitored)
            history.append(m)
            let left = elapsed / Double(step - firstStep) * Double(end - step)
            let terms = sums.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: " ")
            let reduced = allReduce.map { String(format: "  all-reduce %.0f%%", 100 * $0) } ?? ""
            if !monitored.isEmpty { lastMonitored = monitored }
            let shown = lastMonitored.sorted { $0.key < $1.key }.map { String(format: "  %@ %.1f%%", $0.key, 100 * $0.value) }.joined()
            log(String(format: "\rstep %d/%d  %@  lr %.4g  %.2f clips/s  data wait %.0f%%%@%@  %@ left   ", step, total, terms, m.lr, clipsPerSecond,
                       100 * dataWait, reduced, shown, formatDuration(left)))
            // after a warm-up, so the loader's first batches do not count
            if !warnedAboutData && step - firstStep >= 20 && dataWait > Self.dataWaitWarning {
                warnedAboutData = true
                log(String(format: "\nwarning: the step waited for data %.0f%% of the time; more loader threads (data.loader_workers, now %d) may feed it\n",
                           100 * dataWait, recipe.loaderThreads))
            }
            if let events, step % recipe.train.logEvery == 0 || step == end || !monitored.isEmpty {
                try folder.appendMetrics(m)
                try events.add(scalars: sums.sorted { $0.key < $1.key } + [("lr", m.lr), ("clips_per_s", Float(clipsPerSecond)),
                                                                          ("data_wait", Float(dataWait))]
                               + monitored.sorted { $0.key < $1.key }.map { (StepMetrics.monitorPrefix + $0.key, Float($0.value)) }, step: step)
            }
            let checkpointDue = step % recipe.train.checkpointEvery == 0 || step == total
            if checkpointDue {
                try checkInSync()
                if isLeader { try save() }
            }
            // every process stops at the same step, when any of them was asked to
            if step < end, stopAgreed() {
                if !checkpointDue && isLeader { try save() }
                log("\n")
                throw Interrupted(signal: StopRequests.shared.requested ?? SIGTERM,
                                  detail: "checkpoint written at step \(step) of \(total) in \(folder.checkpoints.path); rerun the same command to continue")
            }
        }
        log("\n")
        log(String(format: "peak memory: %.2f GiB (estimated %.2f GiB)\n", Double(MemoryEstimate.peakResidentBytes()) / Double(1 << 30),
                   Double(memoryEstimate.total) / Double(1 << 30)))
        if step == total && isLeader { try exportEncoder() }
        return history
    }

    /// Averages every gradient and the step's loss values over the processes (one all-reduce of
    /// one buffer); a parameter without a gradient counts as zero.
    func averageOverProcesses(_ values: inout [String: Float]) {
        let processes = collective.size
        guard processes > 1 else { return }
        let parameters = learner.parameters.map(\.tensor)
        let keys = values.keys.sorted()
        let total = parameters.reduce(0) { $0 + $1.count } + keys.count
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { buffer.deallocate() }
        var offset = 0
        for p in parameters {
            if let g = p.grad { (buffer + offset).update(from: g.data, count: p.count) } else { (buffer + offset).update(repeating: 0, count: p.count) }
            offset += p.count
        }
        for (i, k) in keys.enumerated() { buffer[offset + i] = values[k]! }
        collective.sumInPlace(buffer, count: total)
        let scale = 1 / Float(processes)
        offset = 0
        for p in parameters {
            let g = p.grad ?? Tensor.zeros(p.shape)
            for i in 0..<p.count { g.data[i] = buffer[offset + i] * scale }
            p.grad = g
            offset += p.count
        }
        for (i, k) in keys.enumerated() { values[k] = buffer[offset + i] * scale }
    }

    /// Whether any process received SIGTERM or SIGINT (all of them learn it at the same step).
    func stopAgreed() -> Bool {
        let mine: Float = StopRequests.shared.requested != nil ? 1 : 0
        guard collective.size > 1 else { return mine > 0 }
        var flag = mine
        collective.sumInPlace(&flag, count: 1)
        return flag > 0
    }

    /// Processes must hold bit-identical parameters: their checksums compared at every checkpoint.
    func checkInSync() throws {
        guard collective.size > 1 else { return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for p in learner.parameters { hash = fnv1a64(UnsafeRawBufferPointer(start: p.tensor.data, count: 4 * p.tensor.count), continuing: hash) }
        let all = collective.gather(hash)
        guard Set(all).count == 1 else {
            throw TrainingError("step \(step): the processes' parameters differ (checksums \(all.map { String(format: "%016llx", $0) }.joined(separator: ", "))); stopped")
        }
    }

    /// The loss of one batch and its named terms.
    func lossOf(_ batch: ClipBatch) -> (Tensor, [String: Float]) {
        switch learner {
        case .contrastive(let m):
            // MCL's weight: larger while the learning rate warms up
            let alignmentWeight = Float(step < recipe.optim.warmupSteps ? recipe.loss.alignmentWarmupWeight : recipe.loss.alignmentWeight)
            let terms = m.losses(rgbA: batch.rgbA, rgbB: batch.rgbB, motionA: batch.motionA, motionB: batch.motionB,
                                 alignmentTarget: batch.alignmentTarget, alignmentWeight: recipe.loss.alignment ? alignmentWeight : 0, rng: &rng)
            return (terms.total, terms.values)
        case .supervised(let net):
            net.train()
            func classify() -> Tensor {
                guard let fc = net.fc, recipe.model.dropout > 0 else { return net(batch.rgbA) }
                return fc(net.features(batch.rgbA).dropout(Float(recipe.model.dropout), training: true, rng: &rng))
            }
            let logits = recipe.model.syncBn ? SynchronizedBatchNorm.with(collective) { classify() } : classify()
            let loss = softmaxCrossEntropy(logits, labels: batch.labels.map { max(0, $0) })
            return (loss, ["loss": loss.item()])
        }
    }

    // MARK: - checkpoints

    /// Hands the run's whole state to the run folder, which writes it as a checkpoint.
    func save() throws {
        var tensors: [String: SafeTensors.Entry] = [:]
        var tracked: [String: Int] = [:]
        for (prefix, module) in learner.modules {
            for (name, t) in module.namedState(prefix: prefix) { tensors[name] = .float32(t) }
            for (n, m) in module.namedModules() { if let bn = m as? BatchNorm { tracked["\(prefix).\(n)"] = bn.numBatchesTracked } }
        }
        var pointers: [String: Int] = [:]
        if case .contrastive(let m) = learner {
            tensors["queue.visual"] = .float32(m.visualQueue.keys); pointers["visual"] = m.visualQueue.pointer
            if let q = m.motionQueue { tensors["queue.motion"] = .float32(q.keys); pointers["motion"] = q.pointer }
        }
        for (k, t) in optimizer.stateTensors() { tensors["optimizer.\(k)"] = .float32(t) }
        let meta = Checkpoint.Meta(step: step, rng: rng, loader: loaderPosition, queuePointers: pointers, batchesTracked: tracked,
                                   recipeSource: recipe.source, recipeChecksum: nil)
        try folder.writeCheckpoint(.init(meta: meta, recipe: recipe, tensors: tensors), keep: recipe.train.keepCheckpoints)
    }

    /// Verifies `checkpoint` before anything is changed, refuses a checkpoint of another recipe,
    /// then restores the run's whole state.
    func load(checkpoint url: URL) throws {
        let checkpoint = try Checkpoint(folder: url)
        let (meta, saved, tensors) = (checkpoint.meta, checkpoint.recipe, checkpoint.tensors)
        for key in RecipeKey.all.map(\.key) where !Recipe.bookkeepingKeys.contains(key) && saved.values[key] != recipe.values[key] {
            throw TrainingError("\(folder.url.path): holds a run of another recipe ('\(key)' was \(saved.values[key]!.base), now \(recipe.values[key]!.base)); use another train.output or --fresh")
        }
        for (prefix, module) in learner.modules {
            try module.loadNamedState(tensors, prefix: prefix, source: url.path)
            for (n, m) in module.namedModules() { if let bn = m as? BatchNorm { bn.numBatchesTracked = meta.batchesTracked["\(prefix).\(n)"] ?? 0 } }
        }
        if case .contrastive(let m) = learner {
            for (name, queue) in [("visual", m.visualQueue), ("motion", m.motionQueue)] {
                guard let queue else { continue }
                guard let keys = tensors["queue.\(name)"], keys.shape == queue.keys.shape else {
                    throw TrainingError("\(url.path): state has no 'queue.\(name)' of shape \(queue.keys.shape)")
                }
                queue.restore(keys: keys, pointer: meta.queuePointers[name] ?? 0)
            }
        }
        var optState: [String: Tensor] = [:]
        for (k, v) in tensors where k.hasPrefix("optimizer.") { optState[String(k.dropFirst("optimizer.".count))] = v }
        try optimizer.loadState(optState)
        step = meta.step; rng = meta.rng; loaderPosition = meta.loader
    }

    /// Writes the visual encoder to `encoder.safetensors` in the run folder (torchvision layout).
    public func exportEncoder(to url: URL? = nil) throws {
        let target = url ?? folder.encoder
        var config = recipe.visualConfig
        config.classes = nil
        // The supervised classifier's fc is not part of the encoder.
        let state = learner.visualEncoder.torchStateDict().filter { !$0.key.hasPrefix("fc.") }
        try SafeTensors.write(state, metadata: VisualEncoder.metadata(for: config), to: target)
    }
}
