import Foundation
import Tensor

/// Which of torchvision's video ResNets.
public enum VideoResNetKind: String, Codable, Sendable, CaseIterable {
    case r3d18 = "r3d_18"
    case r2plus1d18 = "r2plus1d_18"
}

/// Shape of a video ResNet: torchvision's at width 1, blocks [2, 2, 2, 2], 3 input channels.
public struct VideoResNetConfig: Codable, Equatable, Sendable {
    public var kind: VideoResNetKind
    /// Multiplies every channel count (0.25 gives 16-32-64-128 stages).
    public var width: Double
    public var blocksPerStage: [Int]
    public var inputChannels: Int
    /// Size of the final fc layer; nil for an encoder that ends at global average pooling.
    public var classes: Int?

    public init(kind: VideoResNetKind, width: Double = 1, blocksPerStage: [Int] = [2, 2, 2, 2], inputChannels: Int = 3, classes: Int? = nil) {
        self.kind = kind; self.width = width; self.blocksPerStage = blocksPerStage
        self.inputChannels = inputChannels; self.classes = classes
    }

    /// round-half-up, the same rule as scripts/make_parity_fixture.py
    func scaled(_ channels: Int) -> Int { max(1, Int((Double(channels) * width + 0.5).rounded(.down))) }
    public var stagePlanes: [Int] { [64, 128, 256, 512].map(scaled) }

    /// The convs whose output `VideoResNet.features(_:capturing:)` can return, by torchvision's
    /// module names: "layerS.B.convK" is the K-th conv of block B of stage S, before its BN (for
    /// R(2+1)D the whole (2+1)D conv).
    public var capturableLayers: [String] {
        blocksPerStage.enumerated().flatMap { s, n in (0..<n).flatMap { b in ["layer\(s + 1).\(b).conv1", "layer\(s + 1).\(b).conv2"] } }
    }
    public var featureDimension: Int { stagePlanes[3] }
}

/// torchvision's mid-planes rule for a (2+1)D block, so parameters match a full 3x3x3 conv.
public func r2plus1dMidPlanes(_ inPlanes: Int, _ planes: Int) -> Int {
    (inPlanes * planes * 3 * 3 * 3) / (inPlanes * 3 * 3 + 3 * planes)
}

/// Conv2Plus1D: (1,3,3) spatial conv to `mid` channels, BN, ReLU, (3,1,1) temporal conv.
/// torchvision names: 0 (spatial conv), 1 (BN), 3 (temporal conv).
final class Conv2Plus1D: Module {
    let spatial: Conv3d, norm: BatchNorm, temporal: Conv3d
    init(_ cin: Int, _ cout: Int, mid: Int, stride: Int, rng: inout RandomGenerator) {
        spatial = Conv3d(cin, mid, kernel: [1, 3, 3], stride: [1, stride, stride], padding: [0, 1, 1], rng: &rng)
        norm = BatchNorm(mid)
        temporal = Conv3d(mid, cout, kernel: [3, 1, 1], stride: [stride, 1, 1], padding: [1, 0, 0], rng: &rng)
    }
    override var children: [(String, Module)] { [("0", spatial), ("1", norm), ("3", temporal)] }
    func callAsFunction(_ x: Tensor) -> Tensor { temporal(norm(spatial(x), relu: true)) }
}

/// torchvision's BasicBlock for video: conv1 = (conv, BN, ReLU), conv2 = (conv, BN), optional
/// downsample = (1x1x1 conv with stride, BN), then add and ReLU.
final class VideoBasicBlock: Module {
    let conv1: Module, bn1: BatchNorm, conv2: Module, bn2: BatchNorm
    let downsample: (Conv3d, BatchNorm)?
    let forwardConv1: (Tensor) -> Tensor, forwardConv2: (Tensor) -> Tensor

    init(kind: VideoResNetKind, _ cin: Int, _ planes: Int, stride: Int, rng: inout RandomGenerator) {
        switch kind {
        case .r2plus1d18:
            let mid = r2plus1dMidPlanes(cin, planes)
            let c1 = Conv2Plus1D(cin, planes, mid: mid, stride: stride, rng: &rng)
            let c2 = Conv2Plus1D(planes, planes, mid: mid, stride: 1, rng: &rng)
            conv1 = c1; conv2 = c2
            forwardConv1 = { c1($0) }; forwardConv2 = { c2($0) }
        case .r3d18:
            let c1 = Conv3d(cin, planes, kernel: [3, 3, 3], stride: [stride, stride, stride], padding: [1, 1, 1], rng: &rng)
            let c2 = Conv3d(planes, planes, kernel: [3, 3, 3], padding: [1, 1, 1], rng: &rng)
            conv1 = c1; conv2 = c2
            forwardConv1 = { c1($0) }; forwardConv2 = { c2($0) }
        }
        bn1 = BatchNorm(planes); bn2 = BatchNorm(planes)
        if stride != 1 || cin != planes {
            downsample = (Conv3d(cin, planes, kernel: [1, 1, 1], stride: [stride, stride, stride], rng: &rng), BatchNorm(planes))
        } else {
            downsample = nil
        }
    }

    override var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv1", Group([("0", conv1), ("1", bn1)])), ("conv2", Group([("0", conv2), ("1", bn2)]))]
        if let (conv, bn) = downsample { c.append(("downsample", Group([("0", conv), ("1", bn)]))) }
        return c
    }

    func callAsFunction(_ x: Tensor) -> Tensor { forward(x, capture: nil).output }

    /// The block's output and, with `capture` 1 or 2, the output of conv1 or conv2 (before its BN).
    func forward(_ x: Tensor, capture: Int?) -> (output: Tensor, captured: Tensor?) {
        let c1 = forwardConv1(x)
        let c2 = forwardConv2(bn1(c1, relu: true))
        let shortcut = downsample.map { $0.1($0.0(x)) } ?? x
        return (addReLU(bn2(c2), shortcut), capture == 1 ? c1 : (capture == 2 ? c2 : nil))
    }
}

/// R3D-18 / R(2+1)D-18 with torchvision.models.video's exact structure and parameter names.
/// Input (N, T, H, W, C) channels-last; output (N, features) or (N, classes) with fc.
public final class VideoResNet: Module {
    public let config: VideoResNetConfig
    let stem: [(String, Module)]
    let stemForward: (Tensor) -> Tensor
    let stages: [[VideoBasicBlock]]
    public let fc: Linear?

    public init(_ config: VideoResNetConfig, seed: UInt64 = 0) {
        self.config = config
        var rng = RandomGenerator(seed: seed)
        let planes = config.stagePlanes
        let stemOut = planes[0]
        switch config.kind {
        case .r2plus1d18:
            let mid = config.scaled(45)
            let c0 = Conv3d(config.inputChannels, mid, kernel: [1, 7, 7], stride: [1, 2, 2], padding: [0, 3, 3], rng: &rng)
            let b1 = BatchNorm(mid)
            let c3 = Conv3d(mid, stemOut, kernel: [3, 1, 1], padding: [1, 0, 0], rng: &rng)
            let b4 = BatchNorm(stemOut)
            stem = [("0", c0), ("1", b1), ("3", c3), ("4", b4)]
            stemForward = { b4(c3(b1(c0($0), relu: true)), relu: true) }
        case .r3d18:
            let c0 = Conv3d(config.inputChannels, stemOut, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], rng: &rng)
            let b1 = BatchNorm(stemOut)
            stem = [("0", c0), ("1", b1)]
            stemForward = { b1(c0($0), relu: true) }
        }
        let stages = buildStages(planes: planes, blocks: config.blocksPerStage, inputChannels: stemOut, rng: &rng) {
            VideoBasicBlock(kind: config.kind, $0, $1, stride: $2, rng: &$3)
        }
        self.stages = stages
        fc = config.classes.map { Linear(planes[3], $0, rng: &rng) }
    }

    override public var children: [(String, Module)] {
        var c: [(String, Module)] = [("stem", Group(stem))] + stageChildren(stages)
        if let fc { c.append(("fc", fc)) }
        return c
    }

    /// Features after global average pooling: (N, T, H, W, C) -> (N, featureDimension).
    public func features(_ x: Tensor) -> Tensor {
        precondition(x.rank == 5 && x.shape[4] == config.inputChannels,
                     "\(config.kind.rawValue) expects (N, T, H, W, \(config.inputChannels)), got \(x.shape)")
        return forward(x, capture: nil).features
    }

    /// The stem and stages; with `capture` (stage, block, conv 1 or 2), also that conv's output.
    private func forward(_ x: Tensor, capture: (stage: Int, block: Int, conv: Int)?) -> (features: Tensor, captured: Tensor?) {
        var h = stemForward(x)
        var captured: Tensor?
        for (i, blocks) in stages.enumerated() {
            for (j, b) in blocks.enumerated() {
                let r = b.forward(h, capture: capture.flatMap { $0.stage == i && $0.block == j ? $0.conv : nil })
                h = r.output
                if let c = r.captured { captured = c }
            }
        }
        return (h.globalAveragePool(), captured)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let f = features(x)
        return fc.map { $0(f) } ?? f
    }

    /// `config.capturableLayers`.
    public var capturableLayers: [String] { config.capturableLayers }

    /// The last block's second conv: MCL's layer for its alignment loss.
    public var lastConvLayer: String { capturableLayers.last! }

    /// Features, and the output of `layer` (one of `capturableLayers`): (N, T', H', W', C').
    public func features(_ x: Tensor, capturing layer: String) -> (features: Tensor, activation: Tensor) {
        guard let index = capturableLayers.firstIndex(of: layer) else {
            preconditionFailure("\(layer) is not one of \(capturableLayers)")
        }
        // two convs per block, blocks counted across stages
        var block = index / 2, stage = 0
        while block >= stages[stage].count { block -= stages[stage].count; stage += 1 }
        let r = forward(x, capture: (stage, block, index % 2 + 1))
        return (r.features, r.captured!)
    }
}
