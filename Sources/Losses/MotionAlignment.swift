import Foundation
import Tensor

/// MCL's motion alignment loss (Li et al., ICCV 2021): the visual encoder's saliency for the
/// positive pair, a Grad-CAM-style map P computed from the gradient G of the positive logit with
/// respect to a conv's output A, is aligned by cosine similarity with the motion-boundary map M
/// of the query clip's own flow, in space-time, in time and in space. P depends on the weights
/// through G, so training on this loss differentiates twice (G is taken with `createGraph`).
public struct MotionAlignment: Codable, Equatable, Sendable {
    /// What the channel weights multiply: the gradient itself (MCL's released code) or the
    /// activation (Grad-CAM as published).
    public enum Weighting: String, Codable, Sendable, CaseIterable { case gradient, activation }

    public var weighting: Weighting
    public var spatiotemporalWeight: Float, temporalWeight: Float, spatialWeight: Float

    public init(weighting: Weighting, spatiotemporalWeight: Float, temporalWeight: Float, spatialWeight: Float) {
        self.weighting = weighting
        self.spatiotemporalWeight = spatiotemporalWeight; self.temporalWeight = temporalWeight; self.spatialWeight = spatialWeight
    }

    /// P = ReLU(sum over C of w * X), w the mean of G over H and W per time step, X = G or A:
    /// (N, T, H, W, C) -> (N, T, H, W).
    public func saliency(gradient g: Tensor, activation a: Tensor) -> Tensor { Self.saliency(gradient: g, activation: a, weighting: weighting) }

    /// The same map for a given weighting (what `maclr saliency` draws).
    public static func saliency(gradient g: Tensor, activation a: Tensor, weighting: Weighting) -> Tensor {
        precondition(g.rank == 5 && g.shape == a.shape, "saliency: gradient \(g.shape) and activation \(a.shape) must be equal (N, T, H, W, C)")
        let w = g.mean(axes: [2, 3], keepDims: true)                         // (N, T, 1, 1, C)
        return ((weighting == .gradient ? g : a) * w).sum(axes: [4]).relu()
    }

    /// M at the saliency's size: motion-boundary magnitudes (N, T', H', W') summed over the
    /// frames of each of `shape`'s T time steps (frame f to step f * T / T') and averaged over
    /// the blocks of pixels that fall in each of its H x W cells. No gradient.
    public static func target(boundaries b: Tensor, to shape: [Int]) -> Tensor {
        precondition(b.rank == 4 && shape.count == 4 && b.shape[0] == shape[0], "target: boundaries \(b.shape) for a saliency of \(shape)")
        let (n, tf, hf, wf) = (b.shape[0], b.shape[1], b.shape[2], b.shape[3])
        let (t, h, w) = (shape[1], shape[2], shape[3])
        let out = Tensor.zeros(shape)
        var pixelsPerCell = [Float](repeating: 0, count: h * w)
        for y in 0..<hf { for x in 0..<wf { pixelsPerCell[(y * h / hf) * w + x * w / wf] += 1 } }
        for i in 0..<n { for f in 0..<tf {
            let step = f * t / tf
            for y in 0..<hf { for x in 0..<wf {
                let cell = (y * h / hf) * w + x * w / wf
                out.data[((i * t + step) * h * w) + cell] += b.data[((i * tf + f) * hf + y) * wf + x] / pixelsPerCell[cell]
            }}
        }}
        return out
    }

    public struct Terms {
        public var spatiotemporal: Tensor, temporal: Tensor, spatial: Tensor
        public var total: Tensor
        public var values: [String: Float] {
            ["mal_st": spatiotemporal.item(), "mal_t": temporal.item(), "mal_s": spatial.item()]
        }
    }

    /// The three terms, each 1 - cosine averaged over the batch, and their weighted sum, for a
    /// saliency P and a target M, both (N, T, H, W). Spatio-temporal: per time step, the steps
    /// weighted by a softmax over time of M's per-step totals; temporal: the T-vectors of
    /// spatial sums; spatial: the time-averaged maps.
    public func callAsFunction(saliency p: Tensor, target m: Tensor) -> Terms {
        precondition(p.rank == 4 && p.shape == m.shape, "motion alignment: saliency \(p.shape) and target \(m.shape) must be equal (N, T, H, W)")
        let (n, t, h, w) = (p.shape[0], p.shape[1], p.shape[2], p.shape[3])
        func cosine(_ a: Tensor, _ b: Tensor) -> Tensor { (a.l2Normalized() * b.l2Normalized()).sum(axes: [1]) }
        let target = m.detached()
        let stepWeights = noGrad { target.sum(axes: [2, 3]).softmax(axis: 1) }                  // (N, T)
        let perStep = cosine(p.reshape([n * t, h * w]), target.reshape([n * t, h * w])).reshape([n, t])
        let spatiotemporal = ((1 - perStep) * stepWeights).sum(axes: [1]).mean()
        let temporal = (1 - cosine(p.sum(axes: [2, 3]), target.sum(axes: [2, 3]))).mean()
        let spatial = (1 - cosine(p.mean(axes: [1]).reshape([n, h * w]), target.mean(axes: [1]).reshape([n, h * w]))).mean()
        let total = spatiotemporal * spatiotemporalWeight + temporal * temporalWeight + spatial * spatialWeight
        return Terms(spatiotemporal: spatiotemporal, temporal: temporal, spatial: spatial, total: total)
    }
}
