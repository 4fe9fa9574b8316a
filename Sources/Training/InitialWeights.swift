import Backbones
import Foundation
import Tensor

/// Where a visual encoder's weights come from: a run or checkpoint folder of `maclr pretrain`
/// (or of a supervised run), or an encoder file: `maclr export`'s, or a state dict in
/// torchvision's, pytorchvideo's or mmaction2's names (`EncoderFile`).
public enum EncoderWeights {
    /// Loads `source`'s visual encoder into `network` (its fc, if any, left as it is). Returns
    /// what was loaded and what was not, in one line. A network of another shape is named with
    /// the keys that set it.
    @discardableResult
    public static func load(into network: VideoResNet, from source: String) throws -> String {
        var config = network.config
        config.classes = nil
        let encoder = VideoResNet(config, seed: 0)
        let loaded: String
        do {
            if source.hasSuffix(".safetensors") {
                let file = try EncoderFile(path: source)
                guard file.config == config else {
                    let held = file.config
                    throw TrainingError("\(source) holds \(held.kind.rawValue) width \(held.width), blocks \(held.blocksPerStage), \(held.inputChannels) input channels (\(file.layout.rawValue)'s names); the recipe has model.arch \(config.kind.rawValue), model.width \(config.width), model.blocks \(config.blocksPerStage), \(config.inputChannels) input channels")
                }
                try file.load(into: encoder)
                loaded = "\(file.layout.rawValue)'s names, " + file.loadSummary
            } else {
                try load(into: encoder, from: try Checkpoint(path: source))
                loaded = "\(encoder.namedState(prefix: "net").count) tensors loaded"
            }
        } catch let error as WeightsError {
            throw TrainingError("\(error) (model.arch, model.width and model.blocks must be those of the encoder in \(source))")
        }
        let mine = Dictionary(uniqueKeysWithValues: network.namedState(prefix: "net"))
        for (name, tensor) in encoder.namedState(prefix: "net") { mine[name]!.assign(tensor) }
        return loaded
    }

    /// The visual encoder of a checkpoint: "visual.encoder.*" in a contrastive run, "visual.*"
    /// (without its fc) in a supervised one.
    public static func load(into network: VideoResNet, from checkpoint: Checkpoint) throws {
        let prefix = checkpoint.tensors.keys.contains { $0.hasPrefix("visual.encoder.") } ? "visual.encoder" : "visual"
        try network.loadNamedState(checkpoint.tensors, prefix: prefix, source: checkpoint.folder.path)
    }
}
