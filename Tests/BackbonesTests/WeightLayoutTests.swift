import Backbones
import Foundation
import Tensor
import XCTest

/// Encoder files in torchvision's, pytorchvideo's and mmaction2's names: the fixtures under
/// Fixtures/layouts were written by those libraries' modules (scripts/make_layout_fixtures.py),
/// with no metadata, beside the features the library computed on an input.
final class WeightLayoutTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/layouts")

    func features(_ net: VideoResNet, _ inputNCTHW: Tensor) -> Tensor {
        net.eval()
        return noGrad { net.features(inputNCTHW.permute([0, 2, 3, 4, 1])) }
    }

    func testFilesOfEachLibraryAreRecognisedByTheirNamesAndGiveTheLibrarysFeatures() throws {
        let cases: [(String, WeightLayout, VideoResNetKind, Double, String)] = [
            ("torchvision_r2plus1d_18", .torchvision, .r2plus1d18, 0.0625, "fc.weight"),
            ("torchvision_r3d_18", .torchvision, .r3d18, 6.0 / 64, "fc.weight"),
            ("pytorchvideo_r2plus1d_18", .pytorchvideo, .r2plus1d18, 0.0625, "blocks.5.proj.weight"),
            ("pytorchvideo_r3d_18", .pytorchvideo, .r3d18, 0.0625, "blocks.5.proj.weight"),
            ("mmaction2_r3d_18", .mmaction2, .r3d18, 0.0625, "cls_head.fc_cls.weight"),
        ]
        for (name, layout, kind, width, head) in cases {
            let file = try EncoderFile(path: Self.fixtures.appendingPathComponent(name + ".safetensors").path)
            XCTAssertEqual(file.layout, layout, name)
            XCTAssertEqual(file.config, VideoResNetConfig(kind: kind, width: width, blocksPerStage: [1, 2, 1, 1], inputChannels: 3), name)
            XCTAssertEqual(file.notLoaded, [head.replacingOccurrences(of: "weight", with: "bias"), head], "\(name): the head is all that is left")
            let (expected, _) = try SafeTensors.read(Self.fixtures.appendingPathComponent(name + ".expected.safetensors"))
            let error = TorchParityTests.relativeError(features(try file.network(), expected["input"]!), expected["features"]!)
            XCTAssertLessThan(error, 1e-5, "\(name): features against the library's")
            print("\(name): \(file.layout.rawValue), \(file.config.kind.rawValue) width \(file.config.width); features against the library's: \(error) relative")
        }
    }

    /// A network with random weights and BN statistics, so eval mode is not the identity.
    func randomNetwork(_ kind: VideoResNetKind, seed: UInt64) -> VideoResNet {
        let net = VideoResNet(VideoResNetConfig(kind: kind, width: 0.0625, blocksPerStage: [1, 2, 1, 1]), seed: seed)
        var rng = RandomGenerator(seed: seed &+ 1)
        for (name, t) in net.buffers() {
            t.assign(name.hasSuffix("running_var") ? Tensor.uniform(t.shape, low: 0.5, high: 1.5, rng: &rng) : Tensor.randn(t.shape, std: 0.1, rng: &rng))
        }
        return net
    }

    func testOurExportInEveryLayoutLoadsBackToTheSameFeatures() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("layouts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var rng = RandomGenerator(seed: 9)
        let x = Tensor.randn([2, 3, 4, 32, 32], rng: &rng)
        for kind in VideoResNetKind.allCases {
            let net = randomNetwork(kind, seed: 4)
            let reference = features(net, x)
            for layout in WeightLayout.allCases {
                guard let state = net.stateDict(layout: layout) else {
                    XCTAssertEqual([layout, kind] as [AnyHashable], [WeightLayout.mmaction2, VideoResNetKind.r2plus1d18], "only mmaction2 lacks a network")
                    continue
                }
                let url = folder.appendingPathComponent("\(layout.rawValue)-\(kind.rawValue).safetensors")
                try SafeTensors.write(state, to: url)
                let file = try EncoderFile(path: url.path)
                XCTAssertEqual(file.layout, layout)
                XCTAssertEqual(file.config, net.config)
                XCTAssertEqual(features(try file.network(), x).toArray(), reference.toArray(), "\(layout) \(kind)")
            }
        }
    }

    func testAMissingOrMisshapenTensorIsRefusedInOneLineInTheFilesOwnNames() throws {
        let path = Self.fixtures.appendingPathComponent("pytorchvideo_r2plus1d_18.safetensors").path
        let (tensors, _) = try SafeTensors.read(URL(fileURLWithPath: path))
        var missing = tensors
        missing["blocks.2.res_blocks.1.branch2.conv_b.conv_t.weight"] = nil
        XCTAssertThrowsError(try EncoderFile(tensors: missing, path: "p.safetensors").network()) {
            XCTAssertEqual("\($0)", "p.safetensors: missing tensor 'blocks.2.res_blocks.1.branch2.conv_b.conv_t.weight' (pytorchvideo names)")
        }
        var misshapen = tensors
        misshapen["blocks.3.res_blocks.0.branch1_conv.weight"] = Tensor.zeros([16, 4, 1, 1, 1])
        XCTAssertThrowsError(try EncoderFile(tensors: misshapen, path: "p.safetensors").network()) {
            XCTAssertEqual("\($0)", "p.safetensors: 'blocks.3.res_blocks.0.branch1_conv.weight' has shape [16, 4, 1, 1, 1], expected [16, 8, 1, 1, 1]")
        }
        var extra = tensors
        extra["projector.0.weight"] = Tensor.zeros([4, 4])
        let file = try EncoderFile(tensors: extra, path: "p.safetensors")
        XCTAssertEqual(file.notLoaded, ["blocks.5.proj.bias", "blocks.5.proj.weight", "projector.0.weight"])
        XCTAssertEqual(file.loadSummary, "150 tensors loaded; not loaded: blocks.5.proj.bias, blocks.5.proj.weight, projector.0.weight")
    }

    func testUnknownNamesAnotherNetworkAndContradictingMetadataAreRefused() throws {
        XCTAssertThrowsError(try EncoderFile(tensors: ["conv1.weight": Tensor.zeros([4, 3, 7, 7])], path: "r.safetensors")) {
            XCTAssertEqual("\($0)", "r.safetensors: not a video ResNet in torchvision's, pytorchvideo's or mmaction2's names (none of stem.0.weight, blocks.0.conv.weight, conv1.conv.weight is there)")
        }
        // mmaction2's ResNet2Plus1d: an 83-wide stem at width 1
        let mm = ["backbone.conv1.conv.conv_s.weight": Tensor.zeros([83, 3, 1, 7, 7]), "backbone.conv1.conv.conv_t.weight": Tensor.zeros([64, 83, 3, 1, 1])]
        XCTAssertThrowsError(try EncoderFile(tensors: mm, path: "m.safetensors")) {
            XCTAssertTrue("\($0)".hasPrefix("m.safetensors: mmaction2's ResNet2Plus1d (conv1.conv.conv_s.weight [83, 3, 1, 7, 7]) is not torchvision's r2plus1d_18"), "\($0)")
        }
        let path = Self.fixtures.appendingPathComponent("torchvision_r3d_18.safetensors").path
        let (tensors, _) = try SafeTensors.read(URL(fileURLWithPath: path))
        XCTAssertThrowsError(try EncoderFile(tensors: tensors, metadata: ["arch": "r2plus1d_18"], path: "t.safetensors")) {
            XCTAssertEqual("\($0)", "t.safetensors: metadata says arch r2plus1d_18 but the tensors are r3d_18's (stem.0.weight)")
        }
        // DataParallel's module. prefix is looked through
        let wrapped = Dictionary(uniqueKeysWithValues: tensors.map { ("module." + $0.key, $0.value) })
        XCTAssertEqual(try EncoderFile(tensors: wrapped, path: "w.safetensors").config.width, 6.0 / 64)
    }
}
