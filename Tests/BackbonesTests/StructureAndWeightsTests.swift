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

    func testPyTorchDefaultInitDrawsUniformWithinOneOverRootFanIn() {
        let config = VideoResNetConfig(kind: .r2plus1d18, width: 0.25, blocksPerStage: [1, 1, 1, 1], classes: 10)
        let torchvision = VideoResNet(config, seed: 3), pytorch = VideoResNet(config, seed: 3)
        pytorch.initialize(.pytorch, seed: 3)
        func weights(_ m: Module) -> [String: Tensor] { Dictionary(uniqueKeysWithValues: m.parameters().map { ($0.name, $0.tensor) }) }
        let before = weights(torchvision), after = weights(pytorch)
        // layer1.0.conv1.0.0: (1,3,3) conv, 16 -> mid channels: fan_in 144, bound 1/12
        let w = after["layer1.0.conv1.0.0.weight"]!, bound = 1 / Float(144).squareRoot()
        let values = (0..<w.count).map { w.data[$0] }
        XCTAssert(values.allSatisfy { abs($0) <= bound })
        let std = (values.map { $0 * $0 }.reduce(0, +) / Float(values.count)).squareRoot()
        XCTAssertEqual(std, bound / Float(3).squareRoot(), accuracy: 0.05 * bound, "uniform(-b, b) has std b/sqrt(3)")
        // torchvision's Kaiming fan_out draw for the same layer is wider
        let tv = before["layer1.0.conv1.0.0.weight"]!
        let tvStd = ((0..<tv.count).map { tv.data[$0] * tv.data[$0] }.reduce(0, +) / Float(tv.count)).squareRoot()
        XCTAssertGreaterThan(tvStd, 1.5 * std)
        // linear layers: weight and bias within 1/sqrt(in) = 1/sqrt(128); BN stays (1, 0)
        let fcBound = 1 / Float(128).squareRoot()
        for key in ["fc.weight", "fc.bias"] {
            let t = after[key]!
            XCTAssert((0..<t.count).allSatisfy { abs(t.data[$0]) <= fcBound } && (0..<t.count).contains { t.data[$0] != 0 }, key)
        }
        XCTAssertEqual(after["layer1.0.conv1.1.weight"]!.data[0], 1)
        XCTAssertEqual(after["layer1.0.conv1.1.bias"]!.data[0], 0)
        // `.torchvision` keeps the constructor's draw
        let same = VideoResNet(config, seed: 3)
        same.initialize(.torchvision, seed: 3)
        XCTAssertEqual(weights(same)["layer2.0.conv2.0.3.weight"]!.data[5], before["layer2.0.conv2.0.3.weight"]!.data[5])
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
