import Foundation
import Tensor

/// Shape of a frame-wise 2-D ResNet-18 (the Motion pathway: paper uses 1/8 width on flow).
public struct FrameResNetConfig: Codable, Equatable, Sendable {
    public var width: Double
    public var blocksPerStage: [Int]
    /// 2 for (u, v) flow, 1 for a magnitude or motion-boundary map, 3 for RGB.
    public var inputChannels: Int
    public var classes: Int?

    public init(width: Double = 1, blocksPerStage: [Int] = [2, 2, 2, 2], inputChannels: Int = 2, classes: Int? = nil) {
        self.width = width; self.blocksPerStage = blocksPerStage; self.inputChannels = inputChannels; self.classes = classes
    }

    public var stagePlanes: [Int] { [64, 128, 256, 512].map { max(1, Int((Double($0) * width + 0.5).rounded(.down))) } }
    public var featureDimension: Int { stagePlanes[3] }
}

/// torchvision.models.resnet's BasicBlock, applied to every frame (kT = 1 convs).
final class FrameBasicBlock: Module {
    let conv1: Conv3d, bn1: BatchNorm, conv2: Conv3d, bn2: BatchNorm
    let downsample: (Conv3d, BatchNorm)?

    init(_ cin: Int, _ planes: Int, stride: Int, rng: inout RandomGenerator) {
        conv1 = Conv3d(cin, planes, kernel: [1, 3, 3], stride: [1, stride, stride], padding: [0, 1, 1], torch2d: true, rng: &rng)
        bn1 = BatchNorm(planes)
        conv2 = Conv3d(planes, planes, kernel: [1, 3, 3], padding: [0, 1, 1], torch2d: true, rng: &rng)
        bn2 = BatchNorm(planes)
        downsample = (stride != 1 || cin != planes)
            ? (Conv3d(cin, planes, kernel: [1, 1, 1], stride: [1, stride, stride], torch2d: true, rng: &rng), BatchNorm(planes))
            : nil
    }

    override var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if let (conv, bn) = downsample { c.append(("downsample", Group([("0", conv), ("1", bn)]))) }
        return c
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let out = bn2(conv2(bn1(conv1(x), relu: true)))
        return addReLU(out, downsample.map { $0.1($0.0(x)) } ?? x)
    }
}

/// ResNet-18 with torchvision.models.resnet18's names, run on each frame of (N, T, H, W, C);
/// features are averaged over frames and space: (N, featureDimension).
public final class FrameResNet: Module {
    public let config: FrameResNetConfig
    let conv1: Conv3d, bn1: BatchNorm
    let stages: [[FrameBasicBlock]]
    public let fc: Linear?

    public init(_ config: FrameResNetConfig, seed: UInt64 = 0) {
        self.config = config
        var rng = RandomGenerator(seed: seed)
        let planes = config.stagePlanes
        conv1 = Conv3d(config.inputChannels, planes[0], kernel: [1, 7, 7], stride: [1, 2, 2], padding: [0, 3, 3], torch2d: true, rng: &rng)
        bn1 = BatchNorm(planes[0])
        let stages = buildStages(planes: planes, blocks: config.blocksPerStage, inputChannels: planes[0], rng: &rng) {
            FrameBasicBlock($0, $1, stride: $2, rng: &$3)
        }
        self.stages = stages
        fc = config.classes.map { Linear(planes[3], $0, std: 1 / Float(planes[3]).squareRoot(), rng: &rng) }
    }

    override public var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv1", conv1), ("bn1", bn1)] + stageChildren(stages)
        if let fc { c.append(("fc", fc)) }
        return c
    }

    public func features(_ x: Tensor) -> Tensor {
        precondition(x.rank == 5 && x.shape[4] == config.inputChannels,
                     "frame ResNet expects (N, T, H, W, \(config.inputChannels)), got \(x.shape)")
        var h = maxPool3d(bn1(conv1(x), relu: true), kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1])
        for blocks in stages { for b in blocks { h = b(h) } }
        return h.globalAveragePool()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let f = features(x)
        return fc.map { $0(f) } ?? f
    }
}
