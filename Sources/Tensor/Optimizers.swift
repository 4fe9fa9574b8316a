import Foundation

/// A trainable tensor with its name (torchvision-style, e.g. "layer1.0.conv1.0.0.weight") and
/// whether weight decay applies to it (off for BN and bias parameters by convention).
public struct Parameter {
    public let name: String
    public let tensor: Tensor
    public let decays: Bool
    public init(name: String, tensor: Tensor, decays: Bool) {
        self.name = name; self.tensor = tensor; self.decays = decays
    }
}

/// An optimiser updates parameters in place from their `.grad`; its state is named tensors so a
/// checkpoint can hold it.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    func step()
    func zeroGrad()
    /// State tensors by name (momentum buffers, Adam moments, step counter).
    func stateTensors() -> [String: Tensor]
    func loadState(_ state: [String: Tensor]) throws
}

public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

extension Optimizer {
    func restore(_ buffers: [String: Tensor], from state: [String: Tensor]) throws {
        for (name, buffer) in buffers {
            guard let saved = state[name] else { throw OptimizerStateError(description: "optimizer state has no '\(name)'") }
            guard saved.shape == buffer.shape else {
                throw OptimizerStateError(description: "optimizer state '\(name)' has shape \(saved.shape), expected \(buffer.shape)")
            }
            buffer.assign(saved)
        }
    }
}

/// SGD with momentum (PyTorch's form: buf = m*buf + g; Nesterov: step along g + m*buf) and
/// coupled weight decay added to the gradient of decaying parameters.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let momentum: Float, weightDecay: Float, nesterov: Bool
    private let buffers: [Tensor]

    public init(_ parameters: [Parameter], learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum; self.weightDecay = weightDecay; self.nesterov = nesterov
        buffers = parameters.map { Tensor.zeros($0.tensor.shape) }
    }

    public func step() {
        for (p, buf) in zip(parameters, buffers) {
            guard let g = p.tensor.grad else { continue }
            let w = p.tensor.data, gp = g.data, b = buf.data
            let wd = p.decays ? weightDecay : 0, m = momentum, lr = learningRate, nest = nesterov
            parallelFor(p.tensor.count) { s, e in
                for i in s..<e {
                    let d = gp[i] + wd * w[i]
                    b[i] = m * b[i] + d
                    w[i] -= lr * (nest ? d + m * b[i] : b[i])
                }
            }
        }
    }

    public func zeroGrad() { for p in parameters { p.tensor.grad = nil } }

    public func stateTensors() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(parameters, buffers).map { ("momentum." + $0.0.name, $0.1) })
    }

    public func loadState(_ state: [String: Tensor]) throws { try restore(stateTensors(), from: state) }
}

/// AdamW: decoupled weight decay (p *= 1 - lr*wd) and bias-corrected moments.
public final class AdamW: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private let firstMoments: [Tensor], secondMoments: [Tensor]
    private let stepCount = Tensor.zeros([1])

    public init(_ parameters: [Parameter], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        firstMoments = parameters.map { Tensor.zeros($0.tensor.shape) }
        secondMoments = parameters.map { Tensor.zeros($0.tensor.shape) }
    }

    public func step() {
        stepCount.data[0] += 1
        let t = stepCount.data[0]
        let c1 = 1 - Foundation.pow(beta1, t), c2 = 1 - Foundation.pow(beta2, t)
        for (i, p) in parameters.enumerated() {
            guard let g = p.tensor.grad else { continue }
            let w = p.tensor.data, gp = g.data, m = firstMoments[i].data, v = secondMoments[i].data
            let decay = 1 - learningRate * (p.decays ? weightDecay : 0)
            let (b1, b2, lr, eps) = (beta1, beta2, learningRate, self.eps)
            parallelFor(p.tensor.count) { s, e in
                for j in s..<e {
                    m[j] = b1 * m[j] + (1 - b1) * gp[j]
                    v[j] = b2 * v[j] + (1 - b2) * gp[j] * gp[j]
                    w[j] = w[j] * decay - lr * (m[j] / c1) / ((v[j] / c2).squareRoot() + eps)
                }
            }
        }
    }

    public func zeroGrad() { for p in parameters { p.tensor.grad = nil } }

    public func stateTensors() -> [String: Tensor] {
        var s: [String: Tensor] = ["step": stepCount]
        for (i, p) in parameters.enumerated() {
            s["exp_avg." + p.name] = firstMoments[i]
            s["exp_avg_sq." + p.name] = secondMoments[i]
        }
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws { try restore(stateTensors(), from: state) }
}

/// Linear warm-up from 0 to `baseLR` over `warmupSteps`, then cosine decay to `minLR` at `totalSteps`.
public struct WarmupCosineSchedule: Sendable {
    public let baseLR: Float, minLR: Float
    public let warmupSteps: Int, totalSteps: Int

    public init(baseLR: Float, warmupSteps: Int, totalSteps: Int, minLR: Float = 0) {
        self.baseLR = baseLR; self.warmupSteps = warmupSteps; self.totalSteps = max(totalSteps, 1); self.minLR = minLR
    }

    /// The rate for 0-based `step`.
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return baseLR * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        return minLR + 0.5 * (baseLR - minLR) * (1 + Foundation.cos(Float.pi * progress))
    }
}
