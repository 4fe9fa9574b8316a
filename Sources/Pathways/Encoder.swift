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

    /// Reads the architecture from the file's metadata (arch, width, blocks, input_channels).
    public convenience init(contentsOf url: URL) throws {
        let (tensors, meta) = try SafeTensors.read(url)
        guard let arch = meta["arch"].flatMap(VideoResNetKind.init(rawValue:)) else {
            throw WeightsError(description: "\(url.path): metadata has no known 'arch' (r3d_18 or r2plus1d_18)")
        }
        let width = meta["width"].flatMap(Double.init) ?? 1
        let blocks = meta["blocks"].map { $0.split(separator: ",").compactMap { Int($0) } } ?? [2, 2, 2, 2]
        let channels = meta["input_channels"].flatMap(Int.init) ?? 3
        let net = VideoResNet(VideoResNetConfig(kind: arch, width: width, blocksPerStage: blocks, inputChannels: channels))
        try net.loadTorchStateDict(tensors, source: url.path, ignoring: ["fc."])
        self.init(net)
    }

    /// Metadata that lets `init(contentsOf:)` rebuild the network.
    public static func metadata(for config: VideoResNetConfig) -> [String: String] {
        ["arch": config.kind.rawValue, "width": "\(config.width)", "blocks": config.blocksPerStage.map(String.init).joined(separator: ","),
         "input_channels": "\(config.inputChannels)", "format": "pt"]
    }

    /// Features (N, d) of clips (N, T, H, W, C), in evaluation mode.
    public func embed(_ clip: Tensor) -> Tensor { noGrad { network.features(clip) } }
}
