import Backbones
import Foundation
import Losses
import Tensor

/// Global average pool features -> Linear(d, hidden) - ReLU - Linear(hidden, out) -> L2 normalise.
public final class ProjectionHead: Module {
    public let fc1: Linear, fc2: Linear
    public init(input: Int, hidden: Int = 2048, output: Int = 128, rng: inout RandomGenerator) {
        fc1 = Linear(input, hidden, std: 1 / Float(input).squareRoot(), rng: &rng)
        fc2 = Linear(hidden, output, std: 1 / Float(hidden).squareRoot(), rng: &rng)
    }
    override public var children: [(String, Module)] { [("0", fc1), ("2", fc2)] }
    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(x).relu()).l2Normalized() }
}

/// Which network the Motion pathway uses.
public enum MotionBackbone: Codable, Equatable, Sendable {
    /// 2-D ResNet-18 applied to each frame (the paper's choice, at reduced width).
    case frames(FrameResNetConfig)
    /// A 3-D video ResNet on the motion input.
    case video(VideoResNetConfig)
}

/// An encoder and its projection head: embeds a clip (N, T, H, W, C) to (N, out), unit length.
public final class Pathway: Module {
    public let encoder: Module
    public let head: ProjectionHead
    let encode: (Tensor) -> Tensor
    public let featureDimension: Int

    public init(visual config: VideoResNetConfig, hidden: Int, output: Int, seed: UInt64) {
        var c = config; c.classes = nil
        let net = VideoResNet(c, seed: seed)
        encoder = net; encode = { net.features($0) }; featureDimension = c.featureDimension
        var rng = RandomGenerator(seed: seed &+ 1)
        head = ProjectionHead(input: featureDimension, hidden: hidden, output: output, rng: &rng)
    }

    public init(motion backbone: MotionBackbone, hidden: Int, output: Int, seed: UInt64) {
        switch backbone {
        case .frames(var c):
            c.classes = nil
            let net = FrameResNet(c, seed: seed)
            encoder = net; encode = { net.features($0) }; featureDimension = c.featureDimension
        case .video(var c):
            c.classes = nil
            let net = VideoResNet(c, seed: seed)
            encoder = net; encode = { net.features($0) }; featureDimension = c.featureDimension
        }
        var rng = RandomGenerator(seed: seed &+ 1)
        head = ProjectionHead(input: featureDimension, hidden: hidden, output: output, rng: &rng)
    }

    override public var children: [(String, Module)] { [("encoder", encoder), ("head", head)] }

    /// Encoder features (N, d): what evaluation uses.
    public func features(_ x: Tensor) -> Tensor { encode(x) }
    /// Projected, normalised embedding (N, out): what the losses use.
    public func callAsFunction(_ x: Tensor) -> Tensor { head(encode(x)) }

    /// The embedding and the output of `layer` of a video encoder (`VideoResNet.capturableLayers`;
    /// nil: its last conv), for MCL's alignment loss.
    public func embedding(_ x: Tensor, capturing layer: String?) -> (embedding: Tensor, activation: Tensor) {
        guard let net = encoder as? VideoResNet else { preconditionFailure("only a video ResNet's convs can be captured") }
        let (f, a) = net.features(x, capturing: layer ?? net.lastConvLayer)
        return (head(f), a)
    }
}

extension Module {
    /// Copies every parameter and buffer value from `other` (same structure).
    public func copyState(from other: Module) {
        noGrad {
            for (a, b) in zip(parameters(), other.parameters()) { a.tensor.assign(b.tensor) }
            for (a, b) in zip(buffers(), other.buffers()) { a.1.assign(b.1) }
        }
    }

    /// EMA: p <- m p + (1 - m) q for every parameter (BN running statistics stay this module's own).
    public func momentumUpdate(from other: Module, momentum m: Float) {
        for (a, b) in zip(parameters(), other.parameters()) {
            let p = a.tensor.data, q = b.tensor.data
            parallelFor(a.tensor.count) { s, e in for i in s..<e { p[i] = m * p[i] + (1 - m) * q[i] } }
        }
    }
}

/// A ring buffer of past keys (K, D), the negatives of one modality.
public final class EmbeddingQueue {
    public let keys: Tensor
    public private(set) var pointer = 0

    public init(size: Int, dimension: Int, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        keys = noGrad { Tensor.randn([size, dimension], rng: &rng).l2Normalized() }.copy()
    }

    /// Overwrites the oldest rows with `batch` (N, D).
    /// With size 0 the queue stays empty and the loss uses in-batch negatives.
    public func enqueue(_ batch: Tensor) {
        let (n, d, k) = (batch.shape[0], batch.shape[1], keys.shape[0])
        guard k > 0 else { return }
        for i in 0..<n { (keys.data + ((pointer + i) % k) * d).update(from: batch.data + i * d, count: d) }
        pointer = (pointer + n) % k
    }

    public func restore(keys saved: Tensor, pointer: Int) {
        keys.assign(saved)
        self.pointer = pointer
    }
}

/// How the momentum encoder normalises its batch. One process has no cross-GPU shuffle-BN, so a
/// key batch normalised together with its own queries' partners would let BN statistics leak
/// which clips pair up.
public enum KeyBatchNorm: String, Codable, Sendable, CaseIterable {
    /// Shuffle the key batch and run it in sub-batches, each with its own BN statistics, then
    /// unshuffle (what shuffle-BN does across GPUs).
    case shuffledSubBatches = "shuffle"
    /// BN with the momentum encoder's running statistics (no batch statistics at all).
    case runningStatistics = "eval"
}
