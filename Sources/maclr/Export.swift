import ArgumentParser
import Backbones
import Foundation
import Tensor

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a visual encoder to torchvision-compatible safetensors.",
        discussion: """
            Names and layouts follow torchvision.models.video, so PyTorch loads the file with
            load_state_dict(strict=True) (fc aside). Without a checkpoint this writes the
            randomly initialised encoder of the given seed: the floor a pretrained one must beat.
            """)

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
        let config = VideoResNetConfig(kind: VideoResNetKind(rawValue: arch)!, width: width)
        let model = VideoResNet(config, seed: seed)
        let url = URL(fileURLWithPath: output)
        try model.saveSafetensors(to: url, metadata: ["arch": arch, "width": "\(width)", "seed": "\(seed)", "source": "maclr random init"])
        print("wrote \(output): \(arch), width \(width), \(model.parameterCount) parameters")
    }
}
