import Foundation

extension Tensor {
    /// x / max(||x||_2, eps) along `axis`, like torch.nn.functional.normalize.
    public func l2Normalized(axis: Int = -1, eps: Float = 1e-12) -> Tensor {
        let norm = (self * self).sum(axes: [axis], keepDims: true).sqrt()
        return self / norm.clamp(min: eps)
    }

    /// Softmax along `axis`.
    public func softmax(axis: Int = -1) -> Tensor {
        (self - logSumExp(axes: [axis], keepDims: true)).exp()
    }

    /// Inverted dropout: zeroes with probability `p` and scales the rest by 1/(1-p).
    public func dropout(_ p: Float, training: Bool, rng: inout RandomGenerator) -> Tensor {
        guard training, p > 0 else { return self }
        let mask = Tensor(uninitialized: shape)
        let keep = 1 / (1 - p)
        for i in 0..<count { mask.data[i] = rng.uniform() < p ? 0 : keep }
        return self * mask
    }
}

/// One-hot rows (N, classes) for integer labels.
public func oneHot(_ labels: [Int], classes: Int) -> Tensor {
    let t = Tensor.zeros([labels.count, classes])
    for (i, l) in labels.enumerated() {
        precondition(l >= 0 && l < classes, "label \(l) out of range 0..<\(classes)")
        t.data[i * classes + l] = 1
    }
    return t
}

/// Mean softmax cross-entropy of logits (N, K) against integer labels.
public func softmaxCrossEntropy(_ logits: Tensor, labels: [Int]) -> Tensor {
    precondition(logits.rank == 2 && logits.shape[0] == labels.count, "cross-entropy: logits \(logits.shape), \(labels.count) labels")
    let lse = logits.logSumExp(axes: [1])
    let picked = (logits * oneHot(labels, classes: logits.shape[1])).sum(axes: [1])
    return (lse - picked).mean()
}

/// Index of the largest value in each row of (N, K).
public func argmaxRows(_ x: Tensor) -> [Int] {
    let k = x.shape[1]
    return (0..<x.shape[0]).map { i in
        var best = 0
        for j in 1..<k where x.data[i * k + j] > x.data[i * k + best] { best = j }
        return best
    }
}
