import ArgumentParser
import Backbones
import Foundation
import Pathways
import Tensor
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a visual encoder to torchvision-compatible safetensors.",
        discussion: """
            Names and layouts follow torchvision.models.video, so PyTorch loads the file with
            load_state_dict(strict=True) (fc aside). With --checkpoint, the trained encoder of a
            run; without, the randomly initialised encoder of the given seed (the floor).
            """)

    @Option(help: "A run folder or checkpoint folder of maclr pretrain.") var checkpoint: String?

    @Option(help: "Network: r2plus1d_18 or r3d_18.") var arch: String = "r2plus1d_18"
    @Option(help: "Width multiplier (1 is torchvision's network).") var width: Double = 1
    @Option(help: "Seed of the random initialisation.") var seed: UInt64 = 0
    @Option(help: "Output .safetensors file.") var output: String

    func validate() throws {
        guard VideoResNetKind(rawValue: arch) != nil else {
            throw ValidationError("--arch '\(arch)' is not one of \(VideoResNetKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard width > 0 else { throw ValidationError("--width must be positive, got \(width)") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: output)
        if let checkpoint {
            let recipe = try Evaluation.recipe(ofCheckpoint: checkpoint)
            let net = try Evaluation.loadEncoder(checkpoint: checkpoint, encoderFile: nil, recipe: recipe)
            var meta = VisualEncoder.metadata(for: net.config)
            meta["source"] = try Evaluation.resolveCheckpoint(checkpoint).path
            try net.saveSafetensors(to: url, metadata: meta)
            print("wrote \(output): \(net.config.kind.rawValue), width \(net.config.width), \(net.parameterCount) parameters")
            return
        }
        let config = VideoResNetConfig(kind: VideoResNetKind(rawValue: arch)!, width: width)
        let model = VideoResNet(config, seed: seed)
        var meta = VisualEncoder.metadata(for: config)
        meta["seed"] = "\(seed)"; meta["source"] = "maclr random init"
        try model.saveSafetensors(to: url, metadata: meta)
        print("wrote \(output): \(arch), width \(width), \(model.parameterCount) parameters")
    }
}
