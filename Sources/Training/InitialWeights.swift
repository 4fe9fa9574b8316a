import Backbones
import Foundation
import Tensor

/// Where a visual encoder's weights come from: a run or checkpoint folder of `maclr pretrain`
/// (or of a supervised run), or an encoder file of `maclr export` (torchvision's layout).
public enum EncoderWeights {
    /// Loads `source`'s visual encoder into `network` (its fc, if any, left as it is). Returns the
    /// number of tensors loaded. A network of another shape is named with the keys that set it.
    @discardableResult
    public static func load(into network: VideoResNet, from source: String) throws -> Int {
        var config = network.config
        config.classes = nil
        let encoder = VideoResNet(config, seed: 0)
        do {
            if source.hasSuffix(".safetensors") {
                try encoder.loadSafetensors(from: URL(fileURLWithPath: source), ignoring: ["fc."])
            } else {
                try load(into: encoder, from: try Checkpoint(path: source))
            }
        } catch let error as WeightsError {
            throw TrainingError("\(error) (model.arch, model.width and model.blocks must be those of the encoder in \(source))")
        }
        let mine = Dictionary(uniqueKeysWithValues: network.namedState(prefix: "net"))
        let theirs = encoder.namedState(prefix: "net")
        for (name, tensor) in theirs { mine[name]!.assign(tensor) }
        return theirs.count
    }

    /// The visual encoder of a checkpoint: "visual.encoder.*" in a contrastive run, "visual.*"
    /// (without its fc) in a supervised one.
    public static func load(into network: VideoResNet, from checkpoint: Checkpoint) throws {
        let prefix = checkpoint.tensors.keys.contains { $0.hasPrefix("visual.encoder.") } ? "visual.encoder" : "visual"
        try network.loadNamedState(checkpoint.tensors, prefix: prefix, source: checkpoint.folder.path)
    }
}
