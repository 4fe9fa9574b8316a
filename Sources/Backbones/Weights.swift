import Foundation
import Tensor

/// Errors loading weights: each names the file and the key at fault.
public struct WeightsError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

extension Module {
    /// The state dict in PyTorch's names and layouts: conv weights (O, C, kT, kH, kW) or
    /// (O, C, kH, kW), BN running stats and num_batches_tracked (int64), as torchvision has them.
    public func torchStateDict() -> [String: SafeTensors.Entry] {
        var out: [String: SafeTensors.Entry] = [:]
        for (prefix, m) in namedModules() {
            let name = { (leaf: String) in prefix.isEmpty ? leaf : prefix + "." + leaf }
            if let conv = m as? Conv3d {
                out[name("weight")] = .float32(torchLayout(conv))
                continue
            }
            for (n, t, _) in m.ownParameters { out[name(n)] = .float32(t) }
            for (n, t) in m.ownBuffers { out[name(n)] = .float32(t) }
            if let bn = m as? BatchNorm { out[name("num_batches_tracked")] = .int64(shape: [], values: [Int64(bn.numBatchesTracked)]) }
        }
        return out
    }

    /// Loads a PyTorch-layout state dict. Keys with a prefix in `ignoring` (e.g. "fc.") are
    /// skipped on both sides; every other key must match in name and shape.
    public func loadTorchStateDict(_ state: [String: Tensor], source: String = "state dict", ignoring: [String] = []) throws {
        func ignored(_ key: String) -> Bool { ignoring.contains { key.hasPrefix($0) } }
        var expected = Set<String>()
        for (prefix, m) in namedModules() {
            let name = { (leaf: String) in prefix.isEmpty ? leaf : prefix + "." + leaf }
            var targets: [(String, Tensor, Conv3d?)] = m.ownParameters.map { (name($0.0), $0.1, m as? Conv3d) }
            targets += m.ownBuffers.map { (name($0.0), $0.1, nil) }
            for (key, tensor, conv) in targets where !ignored(key) {
                expected.insert(key)
                guard let value = state[key] else { throw WeightsError(description: "\(source): missing key '\(key)'") }
                let converted = conv.map { fromTorchLayout(value, like: $0) } ?? value
                guard let converted, converted.shape == tensor.shape || (converted.count == tensor.count && tensor.rank <= 1) else {
                    throw WeightsError(description: "\(source): '\(key)' has shape \(value.shape), expected \(conv.map { torchLayout($0).shape } ?? tensor.shape)")
                }
                tensor.assign(converted)
            }
            if let bn = m as? BatchNorm, !ignored(name("num_batches_tracked")) {
                expected.insert(name("num_batches_tracked"))
                if let v = state[name("num_batches_tracked")] { bn.numBatchesTracked = Int(v.item()) }
            }
        }
        if let extra = state.keys.filter({ !expected.contains($0) && !ignored($0) }).sorted().first {
            throw WeightsError(description: "\(source): unexpected key '\(extra)'")
        }
    }

    public func saveSafetensors(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(torchStateDict(), metadata: metadata, to: url)
    }

    public func loadSafetensors(from url: URL, ignoring: [String] = []) throws {
        let (tensors, _) = try SafeTensors.read(url)
        try loadTorchStateDict(tensors, source: url.path, ignoring: ignoring)
    }
}

func torchLayout(_ conv: Conv3d) -> Tensor { conv.toTorchLayout(conv.weight) }

extension Conv3d {
    /// A tensor shaped like this conv's weight (or its gradient), ours (O, kT, kH, kW, C) ->
    /// PyTorch's (O, C, kT, kH, kW), or (O, C, kH, kW) for a 2-D conv.
    public func toTorchLayout(_ w: Tensor) -> Tensor {
        let p = noGrad { w.permute([0, 4, 1, 2, 3]) }
        if isTorch2d { return p.reshape([p.shape[0], p.shape[1], p.shape[3], p.shape[4]]) }
        return p
    }
}

/// PyTorch layout -> ours, or nil when the rank or size does not fit.
func fromTorchLayout(_ value: Tensor, like conv: Conv3d) -> Tensor? {
    let target = conv.weight.shape  // (O, kT, kH, kW, C)
    var v = value
    if conv.isTorch2d {
        guard value.rank == 4 else { return nil }
        v = value.reshape([value.shape[0], value.shape[1], 1, value.shape[2], value.shape[3]])
    }
    guard v.rank == 5 else { return nil }
    let ours = noGrad { v.permute([0, 2, 3, 4, 1]) }
    return ours.shape == target ? ours : nil
}
