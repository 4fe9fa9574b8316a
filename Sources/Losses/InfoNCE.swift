import Tensor

/// Contrastive losses on L2-normalised embeddings (N, D).
public enum Contrastive {
    /// MoCo-style InfoNCE: each query's positive is its own key; negatives are a queue (K, D).
    /// logits = [q . k+, q . queue^T] / temperature, cross-entropy with the positive at index 0.
    /// The keys and the queue are constants (no gradient), as with a momentum encoder.
    /// An empty queue (0, D) means in-batch negatives: see `inBatch`.
    ///
    /// With data-parallel processes, `k` holds the keys of the whole global batch (B, D) and the
    /// queries (N, D) are this process's rows `keyOffset..<keyOffset + N` of it.
    public static func infoNCE(query q: Tensor, positiveKey keys: Tensor, queue: Tensor, temperature: Float, keyOffset: Int = 0) -> Tensor {
        precondition(q.rank == 2 && keys.rank == 2 && keys.shape[1] == q.shape[1] && keyOffset + q.shape[0] <= keys.shape[0],
                     "infoNCE: query \(q.shape) must be rows \(keyOffset)... of the keys \(keys.shape)")
        precondition(queue.rank == 2 && queue.shape[1] == q.shape[1], "infoNCE: queue \(queue.shape) must be (K, \(q.shape[1]))")
        if queue.shape[0] == 0 { return inBatch(query: q, keys: keys, temperature: temperature, keyOffset: keyOffset) }
        let k = keys.shape[0] == q.shape[0] ? keys : keys.slice(axis: 0, keyOffset..<(keyOffset + q.shape[0]))
        let positive = (q * k.detached()).sum(axes: [1], keepDims: true)          // (N, 1)
        let negative = matmul(q, queue.detached(), transposeB: true)             // (N, K)
        let logits = concat([positive, negative], axis: 1) * (1 / temperature)
        return softmaxCrossEntropy(logits, labels: [Int](repeating: 0, count: q.shape[0]))
    }

    /// MoCo v3-style InfoNCE: each query's positive is its own key, its negatives the batch's
    /// other keys. logits = q k^T / temperature, cross-entropy with the positive on the diagonal;
    /// the keys are constants. No queue, so no stale negatives while the encoder moves fast.
    /// With data-parallel processes the keys are the global batch's (B, D), every one a negative,
    /// and query i's positive is key `keyOffset + i`.
    public static func inBatch(query q: Tensor, keys k: Tensor, temperature: Float, keyOffset: Int = 0) -> Tensor {
        precondition(q.rank == 2 && k.rank == 2 && k.shape[1] == q.shape[1] && keyOffset + q.shape[0] <= k.shape[0],
                     "inBatch: query \(q.shape) must be rows \(keyOffset)... of the keys \(k.shape)")
        let logits = matmul(q, k.detached(), transposeB: true) * (1 / temperature)
        return softmaxCrossEntropy(logits, labels: Array(keyOffset..<(keyOffset + q.shape[0])))
    }

    /// Symmetric in-batch InfoNCE (SimCLR / CVRL style, and the benchmark's two-pathway step):
    /// logits = a b^T / temperature; the mean of cross-entropy over rows and over columns, the
    /// diagonal being positive. Gradients flow into both sides.
    public static func symmetricInBatch(_ a: Tensor, _ b: Tensor, temperature: Float) -> Tensor {
        precondition(a.shape == b.shape && a.rank == 2, "symmetricInBatch: \(a.shape) vs \(b.shape)")
        let logits = matmul(a, b, transposeB: true) * (1 / temperature)
        let labels = Array(0..<a.shape[0])
        return (softmaxCrossEntropy(logits, labels: labels) + softmaxCrossEntropy(logits.transposed(), labels: labels)) * 0.5
    }
}

/// The loss terms of MaCLR for one batch of positive pairs: queries from the two pathways, keys
/// from their momentum copies, one queue per modality.
public struct MaCLRLoss: Codable, Equatable, Sendable {
    /// Weight w of the cross-modal terms: L = L_v + w (L_v->m + L_m->v) + w_m L_m.
    public var crossModalWeight: Float
    /// Weight w_m of the motion intra-modal term (0 in the paper).
    public var motionIntraWeight: Float
    public var temperature: Float

    public init(crossModalWeight: Float, motionIntraWeight: Float, temperature: Float) {
        self.crossModalWeight = crossModalWeight; self.motionIntraWeight = motionIntraWeight; self.temperature = temperature
    }

    public struct Terms {
        public var visual: Tensor
        public var visualToMotion: Tensor?
        public var motionToVisual: Tensor?
        public var motion: Tensor?
        /// MCL's motion alignment terms, when the loss has them (already weighted into `total`).
        public var alignment: MotionAlignment.Terms?
        public var total: Tensor

        /// Named scalar values, for logs and metrics.
        public var values: [String: Float] {
            var v: [String: Float] = ["loss": total.item(), "loss_v": visual.item()]
            if let a = alignment { v.merge(a.values) { $1 } }
            if let t = visualToMotion { v["loss_v2m"] = t.item() }
            if let t = motionToVisual { v["loss_m2v"] = t.item() }
            if let t = motion { v["loss_m"] = t.item() }
            return v
        }
    }

    /// - Parameters: visualQuery/motionQuery (N, D) from the pathways on clip A; visualKey/motionKey
    ///   (N, D) from the momentum pathways on clip B; queues (K, D). Motion arguments nil: visual only.
    ///   With data-parallel processes the keys are the global batch's and the queries this
    ///   process's rows `keyOffset...` of it.
    public func callAsFunction(visualQuery: Tensor, visualKey: Tensor, visualQueue: Tensor,
                               motionQuery: Tensor? = nil, motionKey: Tensor? = nil, motionQueue: Tensor? = nil, keyOffset: Int = 0) -> Terms {
        let infoNCE = { (q: Tensor, k: Tensor, queue: Tensor) in
            Contrastive.infoNCE(query: q, positiveKey: k, queue: queue, temperature: temperature, keyOffset: keyOffset)
        }
        let lv = infoNCE(visualQuery, visualKey, visualQueue)
        guard let mq = motionQuery, let mk = motionKey, let mQueue = motionQueue else {
            return Terms(visual: lv, visualToMotion: nil, motionToVisual: nil, motion: nil, alignment: nil, total: lv)
        }
        // v->m: visual query, motion key, negatives from the key modality's (motion) queue; m->v symmetric.
        let lvm = infoNCE(visualQuery, mk, mQueue)
        let lmv = infoNCE(mq, visualKey, visualQueue)
        var total = lv + (lvm + lmv) * crossModalWeight
        var lm: Tensor? = nil
        if motionIntraWeight > 0 {
            let m = infoNCE(mq, mk, mQueue)
            total = total + m * motionIntraWeight
            lm = m
        }
        return Terms(visual: lv, visualToMotion: lvm, motionToVisual: lmv, motion: lm, alignment: nil, total: total)
    }
}
