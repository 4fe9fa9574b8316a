import Foundation
import Tensor

/// A layer or network: owns parameters and buffers, has named children, and switches between
/// training and evaluation. Names follow PyTorch's state-dict convention ("layer1.0.conv1.0.0.weight").
open class Module {
    public init() {}

    /// Training mode (batch statistics in BN) or evaluation mode (running statistics).
    public private(set) var isTraining = true

    /// Direct children, in order, with their name segment.
    open var children: [(String, Module)] { [] }
    /// This module's own trainable tensors: (name, tensor, decays).
    open var ownParameters: [(String, Tensor, Bool)] { [] }
    /// This module's own non-trainable state, in our layout.
    open var ownBuffers: [(String, Tensor)] { [] }

    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, c) in children { c.train(on) }
    }

    public func eval() { train(false) }

    /// Every module with its full dotted name, depth-first, parents first.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (name, child) in children { out += child.namedModules(prefix: prefix.isEmpty ? name : prefix + "." + name) }
        return out
    }

    public func parameters() -> [Parameter] {
        namedModules().flatMap { (prefix, m) in
            m.ownParameters.map { Parameter(name: prefix.isEmpty ? $0.0 : prefix + "." + $0.0, tensor: $0.1, decays: $0.2) }
        }
    }

    public func buffers() -> [(String, Tensor)] {
        namedModules().flatMap { (prefix, m) in m.ownBuffers.map { (prefix.isEmpty ? $0.0 : prefix + "." + $0.0, $0.1) } }
    }

    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.tensor.count } }

    /// Parameters and buffers in our layout, named "prefix.name" (what a training checkpoint holds).
    public func namedState(prefix: String) -> [(String, Tensor)] {
        parameters().map { ("\(prefix).\($0.name)", $0.tensor) } + buffers().map { ("\(prefix).\($0.0)", $0.1) }
    }

    /// Assigns every parameter and buffer from `tensors` by the names of `namedState(prefix:)`;
    /// a missing or mis-sized entry is an error naming `source` and the key.
    public func loadNamedState(_ tensors: [String: Tensor], prefix: String, source: String) throws {
        for (name, t) in namedState(prefix: prefix) {
            guard let v = tensors[name], v.count == t.count else {
                throw WeightsError(description: "\(source): state has no '\(name)' of shape \(t.shape)")
            }
            t.assign(v)
        }
    }

    /// Marks every parameter as requiring gradients (or not).
    public func requireGradients(_ on: Bool = true) { for p in parameters() { p.tensor.requiresGrad = on } }
}

/// 3-D convolution without bias (as in torchvision's video ResNets), channels-last.
/// Weight (O, kT, kH, kW, C); PyTorch stores (O, C, kT, kH, kW), or (O, C, kH, kW) for a 2-D conv.
public final class Conv3d: Module {
    public let weight: Tensor
    public let stride: [Int], padding: [Int]
    /// Whether the PyTorch counterpart is a Conv2d (weights exported as 4-D).
    public let isTorch2d: Bool

    public init(_ inChannels: Int, _ outChannels: Int, kernel: [Int], stride: [Int] = [1, 1, 1], padding: [Int] = [0, 0, 0],
                torch2d: Bool = false, rng: inout RandomGenerator) {
        // Kaiming normal, fan_out, ReLU gain: torchvision's init for these networks.
        let fanOut = outChannels * kernel.reduce(1, *)
        weight = Tensor.randn([outChannels] + kernel + [inChannels], std: (2 / Float(fanOut)).squareRoot(), rng: &rng)
        self.stride = stride; self.padding = padding; self.isTorch2d = torch2d
    }

    override public var ownParameters: [(String, Tensor, Bool)] { [("weight", weight, true)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { conv3d(x, weight, stride: stride, padding: padding) }
}

/// Batch normalisation over channels-last data (BatchNorm3d / BatchNorm2d).
public final class BatchNorm: Module {
    public let weight: Tensor, bias: Tensor
    public let runningMean: Tensor, runningVar: Tensor
    public var numBatchesTracked = 0
    /// A var: precise BN recomputes the running statistics as a cumulative average (1 / batch).
    public var momentum: Float
    public let eps: Float

    public init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        weight = Tensor.ones([channels]); bias = Tensor.zeros([channels])
        runningMean = Tensor.zeros([channels]); runningVar = Tensor.ones([channels])
        self.momentum = momentum; self.eps = eps
    }

    override public var ownParameters: [(String, Tensor, Bool)] { [("weight", weight, false), ("bias", bias, false)] }
    override public var ownBuffers: [(String, Tensor)] { [("running_mean", runningMean), ("running_var", runningVar)] }

    /// With `relu`, relu(BN(x)) fused in one op.
    public func callAsFunction(_ x: Tensor, relu: Bool = false) -> Tensor {
        if isTraining { numBatchesTracked += 1 }
        return batchNorm(x, gamma: weight, beta: bias, runningMean: runningMean, runningVar: runningVar,
                         training: isTraining, momentum: momentum, eps: eps, relu: relu)
    }
}

/// y = x W^T + b, W (out, in) as in PyTorch.
public final class Linear: Module {
    public let weight: Tensor, bias: Tensor

    public init(_ inFeatures: Int, _ outFeatures: Int, std: Float = 0.01, rng: inout RandomGenerator) {
        weight = Tensor.randn([outFeatures, inFeatures], std: std, rng: &rng)
        bias = Tensor.zeros([outFeatures])
    }

    override public var ownParameters: [(String, Tensor, Bool)] { [("weight", weight, true), ("bias", bias, false)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// A named container for modules that only group others (torchvision's nn.Sequential indices).
public final class Group: Module {
    private let items: [(String, Module)]
    public init(_ items: [(String, Module)]) { self.items = items }
    override public var children: [(String, Module)] { items }
}

/// ResNet stages: stage i holds `blocks[i]` blocks of `planes[i]` channels, and the first block
/// of every stage after the first strides by 2. `make(inChannels, planes, stride, &rng)`.
func buildStages<Block: Module>(planes: [Int], blocks: [Int], inputChannels: Int, rng: inout RandomGenerator,
                                _ make: (Int, Int, Int, inout RandomGenerator) -> Block) -> [[Block]] {
    precondition(planes.count == blocks.count, "\(planes.count) stage widths for \(blocks.count) stage depths")
    var cin = inputChannels
    return planes.enumerated().map { i, p in
        (0..<blocks[i]).map { j in
            defer { cin = p }
            return make(cin, p, (i > 0 && j == 0) ? 2 : 1, &rng)
        }
    }
}

/// torchvision's names for stages: "layer1" ... "layer4", blocks "0", "1", ...
func stageChildren(_ stages: [[Module]]) -> [(String, Module)] {
    stages.enumerated().map { i, blocks in
        ("layer\(i + 1)", Group(blocks.enumerated().map { (String($0.offset), $0.element) }))
    }
}

/// How a network's weights start.
public enum WeightInit: String, Codable, Sendable, CaseIterable {
    /// torchvision's init of its ResNets: convs Kaiming normal (fan_out, ReLU gain), linear layers
    /// N(0, 0.01) or the head's own scale, BN (1, 0).
    case torchvision
    /// PyTorch's layer defaults (what a model gets without an init function): convs and linear
    /// weights uniform in +-1/sqrt(fan_in) (Kaiming uniform with a = sqrt(5)), linear biases
    /// likewise, BN (1, 0). Weights ~2.5x smaller than torchvision's, so the same Adam step moves
    /// them relatively further.
    case pytorch
}

extension Module {
    /// Redraws every conv and linear layer's weights by `scheme` from `seed` (BN keeps (1, 0)).
    /// `.torchvision` leaves the constructors' draw as it is.
    public func initialize(_ scheme: WeightInit, seed: UInt64) {
        guard scheme == .pytorch else { return }
        var rng = RandomGenerator(seed: seed)
        func fill(_ t: Tensor, bound: Float) {
            for i in 0..<t.count { t.data[i] = bound * (2 * rng.uniform() - 1) }
        }
        for (_, m) in namedModules() {
            if let conv = m as? Conv3d {
                // weight (O, kT, kH, kW, C): fan_in = kT kH kW C
                fill(conv.weight, bound: 1 / Float(conv.weight.count / conv.weight.shape[0]).squareRoot())
            } else if let fc = m as? Linear {
                let bound = 1 / Float(fc.weight.shape[1]).squareRoot()
                fill(fc.weight, bound: bound)
                fill(fc.bias, bound: bound)
            }
        }
    }
}
