import Backbones
import Foundation
import Tensor
import XCTest

final class StructureAndWeightsTests: XCTestCase {
    /// Parameter and state-dict entry counts of torchvision's networks (fc of 400 / 1000 classes).
    func testFullSizeNetworksHaveTorchvisionCounts() {
        let r21 = VideoResNet(VideoResNetConfig(kind: .r2plus1d18, classes: 400))
        XCTAssertEqual(r21.parameterCount, 31_505_325)
        XCTAssertEqual(r21.torchStateDict().count, 224)
        let r3 = VideoResNet(VideoResNetConfig(kind: .r3d18, classes: 400))
        XCTAssertEqual(r3.parameterCount, 33_371_472)
        XCTAssertEqual(r3.torchStateDict().count, 122)
        let r18 = FrameResNet(FrameResNetConfig(inputChannels: 3, classes: 1000))
        XCTAssertEqual(r18.parameterCount, 11_689_512)
        XCTAssertEqual(r18.torchStateDict().count, 122)
    }

    func testWidthDepthAndChannelsAreParameters() {
        let m = VideoResNet(VideoResNetConfig(kind: .r2plus1d18, width: 0.25, blocksPerStage: [1, 1, 1, 1], inputChannels: 2))
        XCTAssertEqual(m.config.stagePlanes, [16, 32, 64, 128])
        XCTAssertNotNil(m.torchStateDict()["layer4.0.downsample.0.weight"])
        XCTAssertNil(m.torchStateDict()["layer1.1.conv1.0.0.weight"])
        var rng = RandomGenerator(seed: 1)
        let out = noGrad { m(Tensor.randn([2, 4, 16, 16, 2], rng: &rng)) }
        XCTAssertEqual(out.shape, [2, 128])
        XCTAssertEqual(r2plus1dMidPlanes(64, 128), 230)   // torchvision's layer2.0 mid planes
    }

    func testSavedWeightsReloadToTheSameOutput() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("enc-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let config = VideoResNetConfig(kind: .r3d18, width: 0.125)
        let a = VideoResNet(config, seed: 1), b = VideoResNet(config, seed: 2)
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randn([2, 8, 32, 32, 3], rng: &rng)   // >1 value per channel in layer4's BN
        a.train(); _ = noGrad { a(x) }            // move BN running stats off their init
        a.eval(); b.eval()
        try a.saveSafetensors(to: url)
        XCTAssertNotEqual(noGrad { a(x) }.toArray(), noGrad { b(x) }.toArray())
        try b.loadSafetensors(from: url)
        XCTAssertEqual(noGrad { a(x) }.toArray(), noGrad { b(x) }.toArray())
        let (raw, _) = try SafeTensors.read(url)
        XCTAssertEqual(raw["stem.0.weight"]!.shape, [8, 3, 3, 7, 7], "PyTorch layout (O, C, kT, kH, kW)")
        XCTAssertEqual(raw["stem.1.num_batches_tracked"]!.item(), 1)
    }

    func testStrictLoadingNamesTheKeyAtFault() throws {
        let m = VideoResNet(VideoResNetConfig(kind: .r2plus1d18, width: 0.0625))
        var state: [String: Tensor] = [:]
        for (k, v) in m.torchStateDict() {
            if case .float32(let t) = v { state[k] = t } else { state[k] = Tensor(scalar: 0) }
        }
        try m.loadTorchStateDict(state)
        var missing = state; missing["layer2.0.downsample.1.running_var"] = nil
        XCTAssertThrowsError(try m.loadTorchStateDict(missing, source: "x.safetensors")) {
            XCTAssertEqual("\($0)", "x.safetensors: missing key 'layer2.0.downsample.1.running_var'")
        }
        var extra = state; extra["fc.weight"] = Tensor.zeros([10, 32])
        XCTAssertThrowsError(try m.loadTorchStateDict(extra, source: "x.safetensors")) {
            XCTAssertEqual("\($0)", "x.safetensors: unexpected key 'fc.weight'")
        }
        XCTAssertNoThrow(try m.loadTorchStateDict(extra, ignoring: ["fc."]))
        XCTAssertEqual(state["stem.0.weight"]!.shape, [3, 3, 1, 7, 7])
        var wrong = state; wrong["stem.0.weight"] = Tensor.zeros([3, 3, 1, 5, 5])
        XCTAssertThrowsError(try m.loadTorchStateDict(wrong, source: "x.safetensors")) {
            XCTAssertEqual("\($0)", "x.safetensors: 'stem.0.weight' has shape [3, 3, 1, 5, 5], expected [3, 3, 1, 7, 7]")
        }
    }
}
