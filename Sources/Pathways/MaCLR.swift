import Backbones
import Foundation
import Losses
import Tensor

/// The MaCLR model: Visual and Motion pathways, their momentum copies and queues, and the loss.
/// With no Motion pathway it is the visual-only (MoCo / CVRL-style) baseline.
public final class MaCLRModel {
    /// What the model is. A recipe builds it (Training's `Recipe.modelConfig`): the recipe schema
    /// holds every default, so the values a recipe sets are required here.
    public struct Config: Codable, Equatable, Sendable {
        public var visual: VideoResNetConfig
        /// nil: no Motion pathway.
        public var motion: MotionBackbone?
        public var weightInit: WeightInit
        public var headHidden: Int, embedding: Int
        public var queueSize: Int
        public var momentum: Float
        public var keyBatchNorm: KeyBatchNorm
        /// Shuffled key sub-batches (shuffle-BN) in one process.
        public var keySubBatches = 2
        /// BatchNorm statistics of the query pathways over this many groups of the global batch
        /// (1: the whole batch); with data-parallel processes each holds whole groups, so the same
        /// number gives the same statistics on any number of processes.
        public var queryBatchNormGroups = 1
        /// Query BN statistics over the global batch, shared by the processes (SyncBatchNorm).
        public var synchronizedBatchNorm = false
        public var loss: MaCLRLoss
        /// MCL's motion alignment loss on the visual query, at a conv of the visual encoder.
        public var alignment: Alignment?

        public init(visual: VideoResNetConfig, motion: MotionBackbone?, weightInit: WeightInit, headHidden: Int, embedding: Int, queueSize: Int,
                    momentum: Float, keyBatchNorm: KeyBatchNorm, loss: MaCLRLoss, alignment: Alignment? = nil) {
            self.visual = visual; self.motion = motion; self.weightInit = weightInit
            self.headHidden = headHidden; self.embedding = embedding; self.queueSize = queueSize; self.momentum = momentum
            self.keyBatchNorm = keyBatchNorm; self.loss = loss; self.alignment = alignment
        }
    }

    public struct Alignment: Codable, Equatable, Sendable {
        public var loss: MotionAlignment
        /// One of the visual encoder's `capturableLayers`; nil: its last conv (MCL's choice).
        public var layer: String?
        public init(loss: MotionAlignment, layer: String?) { self.loss = loss; self.layer = layer }
    }

    public let config: Config
    public let visual: Pathway, visualKey: Pathway
    public let motion: Pathway?, motionKey: Pathway?
    public let visualQueue: EmbeddingQueue
    public let motionQueue: EmbeddingQueue?
    /// The data-parallel processes this model trains in: keys are gathered from all of them (the
    /// global batch's keys are every query's negatives and enter the queues), and the key
    /// pathways' shuffled sub-batches are spread over them.
    public var collective: Collective = SingleProcess()

    public init(_ config: Config, seed: UInt64) {
        self.config = config
        visual = Pathway(visual: config.visual, hidden: config.headHidden, output: config.embedding, seed: seed)
        // the encoder's draws come first, so its init equals a bare VideoResNet's from `seed`
        visual.initialize(config.weightInit, seed: seed)
        visualKey = Pathway(visual: config.visual, hidden: config.headHidden, output: config.embedding, seed: seed)
        visualKey.copyState(from: visual)
        if let m = config.motion, let q = Self.initialMotionPathway(config, seed: seed) {
            let k = Pathway(motion: m, hidden: config.headHidden, output: config.embedding, seed: seed &+ 100)
            k.copyState(from: q)
            motion = q; motionKey = k
            motionQueue = EmbeddingQueue(size: config.queueSize, dimension: config.embedding, seed: seed &+ 200)
        } else {
            motion = nil; motionKey = nil; motionQueue = nil
        }
        visualQueue = EmbeddingQueue(size: config.queueSize, dimension: config.embedding, seed: seed &+ 300)
        visual.requireGradients(); motion?.requireGradients()
    }

    /// The Motion pathway's query as pretraining from `seed` starts it (nil without a Motion pathway).
    public static func initialMotionPathway(_ config: Config, seed: UInt64) -> Pathway? {
        guard let m = config.motion else { return nil }
        let q = Pathway(motion: m, hidden: config.headHidden, output: config.embedding, seed: seed &+ 100)
        q.initialize(config.weightInit, seed: seed &+ 100)
        return q
    }

    /// The trainable parameters (query pathways), named "visual.*" and "motion.*".
    public func parameters() -> [Parameter] {
        let v = visual.parameters().map { Parameter(name: "visual." + $0.name, tensor: $0.tensor, decays: $0.decays) }
        let m = (motion?.parameters() ?? []).map { Parameter(name: "motion." + $0.name, tensor: $0.tensor, decays: $0.decays) }
        return v + m
    }

    /// The key sub-batches of a global batch of `n`: with several processes each embeds a
    /// contiguous share of them, so they must divide evenly.
    public func keyGroups(globalBatch n: Int) -> Int { max(1, min(config.keySubBatches, n / 2)) }

    /// Keys (no gradient) of the global batch whose rows `local` this process holds, with the
    /// configured BN treatment: (global batch, D), in the global batch's order.
    func keys(_ net: Pathway, _ local: Tensor, rng: inout RandomGenerator) -> Tensor {
        noGrad {
            switch config.keyBatchNorm {
            case .runningStatistics:
                net.eval(); defer { net.train() }
                return collective.gatherRows(net(local))
            case .shuffledSubBatches:
                net.train()
                // shuffle-BN: the global batch shuffled (the same draw on every process), cut in
                // sub-batches each normalised on its own, then put back in order
                let x = collective.gatherRows(local)
                let n = x.shape[0]
                let groups = keyGroups(globalBatch: n)
                var order = Array(0..<n)
                for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                let shuffled = gatherRows(x, order)
                let size = (n + groups - 1) / groups
                let perProcess = groups / collective.size
                let mine = (collective.rank * perProcess)..<((collective.rank + 1) * perProcess)
                let parts = mine.map { g in net(shuffled.slice(axis: 0, (g * size)..<min(n, (g + 1) * size))) }
                let embedded = collective.gatherRows(concat(parts, axis: 0))
                var inverse = [Int](repeating: 0, count: n)
                for (i, o) in order.enumerated() { inverse[o] = i }
                return gatherRows(embedded, inverse)
            }
        }
    }

    /// A query pathway on this process's clips, BatchNorm over its share of the
    /// `queryBatchNormGroups` groups (one by one when it holds several).
    func queries(_ net: Pathway, _ x: Tensor) -> Tensor {
        if config.synchronizedBatchNorm { return SynchronizedBatchNorm.with(collective) { net(x) } }
        let groups = max(1, config.queryBatchNormGroups / collective.size)
        guard groups > 1 else { return net(x) }
        let n = x.shape[0], size = (n + groups - 1) / groups
        return concat(stride(from: 0, to: n, by: size).map { net(x.slice(axis: 0, $0..<min(n, $0 + size))) }, axis: 0)
    }

    /// Loss terms for a batch of pairs: queries on clip A, keys on clip B. With `alignmentTarget`
    /// (clip A's motion boundaries, (N, T, H, W)) and a positive `alignmentWeight`, MCL's motion
    /// alignment loss on the visual query is added, weighted.
    public func losses(rgbA: Tensor, rgbB: Tensor, motionA: Tensor?, motionB: Tensor?, alignmentTarget: Tensor? = nil,
                       alignmentWeight: Float = 0, rng: inout RandomGenerator) -> MaCLRLoss.Terms {
        visual.train(); motion?.train()
        let aligned = config.alignment != nil && alignmentTarget != nil && alignmentWeight > 0
        precondition(!aligned || config.queryBatchNormGroups <= collective.size, "the alignment loss needs one query BN group per process")
        let (vq, activation): (Tensor, Tensor?) = aligned
            ? { let r = visual.embedding(rgbA, capturing: config.alignment!.layer); return (r.embedding, r.activation) }()
            : (queries(visual, rgbA), nil)
        // keys of the global batch; this process's queries are its rows offset..<offset + N
        let offset = collective.rank * rgbA.shape[0]
        let vk = keys(visualKey, rgbB, rng: &rng)
        var terms: MaCLRLoss.Terms
        if let motion, let motionKey, let motionQueue, let ma = motionA, let mb = motionB {
            let mq = queries(motion, ma)
            let mk = keys(motionKey, mb, rng: &rng)
            pendingKeys.append((vk, mk))
            terms = config.loss(visualQuery: vq, visualKey: vk, visualQueue: visualQueue.keys,
                                motionQuery: mq, motionKey: mk, motionQueue: motionQueue.keys, keyOffset: offset)
        } else {
            pendingKeys.append((vk, nil))
            terms = config.loss(visualQuery: vq, visualKey: vk, visualQueue: visualQueue.keys, keyOffset: offset)
        }
        if let activation, let alignment = config.alignment, let alignmentTarget {
            let ownKeys = collective.size == 1 ? vk : vk.slice(axis: 0, offset..<(offset + rgbA.shape[0]))
            let mal = Self.alignmentTerms(alignment.loss, query: vq, key: ownKeys, activation: activation, boundaries: alignmentTarget)
            terms.alignment = mal
            terms.total = terms.total + mal.total * alignmentWeight
        }
        return terms
    }

    /// MCL's alignment terms: G, the gradient of the positive logits (q . k summed over the
    /// batch; k has no gradient) with respect to `activation`, taken with a graph so the loss
    /// differentiates through it; the saliency P of G; the target M of `boundaries` at P's size.
    public static func alignmentTerms(_ loss: MotionAlignment, query q: Tensor, key k: Tensor, activation a: Tensor,
                                      boundaries: Tensor) -> MotionAlignment.Terms {
        let positive = (q * k.detached()).sum()
        let g = gradients(of: positive, wrt: [a], createGraph: true)[0] ?? Tensor.zeros(a.shape)
        let p = loss.saliency(gradient: g, activation: a)
        return loss(saliency: p, target: MotionAlignment.target(boundaries: boundaries, to: p.shape))
    }

    /// Keys of the micro-batches since the last optimiser step, enqueued after it.
    private var pendingKeys: [(Tensor, Tensor?)] = []

    /// After the optimiser step: EMA the key pathways and enqueue this step's keys.
    public func afterStep() {
        visualKey.momentumUpdate(from: visual, momentum: config.momentum)
        if let motion, let motionKey { motionKey.momentumUpdate(from: motion, momentum: config.momentum) }
        for (vk, mk) in pendingKeys {
            visualQueue.enqueue(vk)
            if let mk { motionQueue?.enqueue(mk) }
        }
        pendingKeys = []
    }
}

/// Rows of (N, ...) in `order`.
func gatherRows(_ x: Tensor, _ order: [Int]) -> Tensor {
    let row = x.count / x.shape[0]
    let out = Tensor(uninitialized: x.shape)
    for (i, o) in order.enumerated() { (out.data + i * row).update(from: x.data + o * row, count: row) }
    return out
}
