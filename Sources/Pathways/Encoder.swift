import Backbones
import Foundation
import Tensor

/// A visual encoder to use elsewhere: load what `maclr export` wrote and embed clips.
///
///     import Pathways
///     let encoder = try VisualEncoder(contentsOf: URL(fileURLWithPath: "encoder.safetensors"))
///     let features = encoder.embed(clip)        // clip (N, T, H, W, 3), normalised RGB -> (N, d)
public final class VisualEncoder {
    public let network: VideoResNet

    public init(_ network: VideoResNet) { self.network = network; network.eval() }

    /// Reads a video ResNet's weights in torchvision's, pytorchvideo's or mmaction2's names
    /// (`EncoderFile`): the network is recognised from the tensors' names and shapes, the
    /// metadata `maclr export` writes is optional.
    public convenience init(contentsOf url: URL) throws {
        self.init(try EncoderFile(path: url.path).network())
    }

    /// Metadata that lets `init(contentsOf:)` rebuild the network.
    public static func metadata(for config: VideoResNetConfig, layout: WeightLayout = .torchvision) -> [String: String] {
        ["arch": config.kind.rawValue, "width": "\(config.width)", "blocks": config.blocksPerStage.map(String.init).joined(separator: ","),
         "input_channels": "\(config.inputChannels)", "format": "pt", "layout": layout.rawValue]
    }

    /// Features (N, d) of clips (N, T, H, W, C), in evaluation mode.
    public func embed(_ clip: Tensor) -> Tensor { noGrad { network.features(clip) } }
}
