import Backbones
import Foundation
import Tensor
import XCTest

/// Whole networks against PyTorch: fixtures made by scripts/make_parity_fixture.py hold
/// torchvision-layout weights, an input, PyTorch's eval and train outputs, and the gradient of
/// sum(train_output * r) for every parameter. Every one is compared, llm.c style.
final class TorchParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// max |ours - theirs| / max |theirs|
    static func relativeError(_ ours: Tensor, _ theirs: Tensor) -> Float {
        XCTAssertEqual(ours.count, theirs.count)
        let scale = max(theirs.toArray().map(abs).max() ?? 0, 1e-12)
        return zip(ours.toArray(), theirs.toArray()).map { abs($0 - $1) }.max()! / scale
    }

    func checkParity(_ file: String, _ model: Module, _ forward: (Tensor) -> Tensor) throws {
        let (tensors, _) = try SafeTensors.read(Self.fixtures.appendingPathComponent(file))
        var weights: [String: Tensor] = [:]
        for (k, v) in tensors where k.hasPrefix("model.") { weights[String(k.dropFirst(6))] = v }
        try model.loadTorchStateDict(weights, source: file)
        let input = tensors["input"]!.permute([0, 2, 3, 4, 1])   // (N, C, T, H, W) -> (N, T, H, W, C)

        model.eval()
        let evalError = Self.relativeError(noGrad { forward(input) }, tensors["eval_output"]!)
        XCTAssertLessThan(evalError, 1e-3, "\(file): eval output")

        model.train()
        model.requireGradients()
        let out = forward(input)
        let trainError = Self.relativeError(out, tensors["train_output"]!)
        XCTAssertLessThan(trainError, 1e-3, "\(file): train output")
        (out * tensors["loss_weights"]!).sum().backward()

        var worst: (Float, String) = (0, "")
        var compared = 0
        for (prefix, m) in model.namedModules() {
            for (name, t, _) in m.ownParameters {
                let key = prefix.isEmpty ? name : prefix + "." + name
                guard let expected = tensors["grad." + key] else { XCTFail("\(file): no PyTorch gradient for \(key)"); continue }
                guard let g = t.grad else { XCTFail("\(file): no gradient for \(key)"); continue }
                let ours = (m as? Conv3d)?.toTorchLayout(g) ?? g
                let e = Self.relativeError(ours, expected)
                if e > worst.0 { worst = (e, key) }
                XCTAssertLessThan(e, 1e-3, "\(file): gradient of \(key)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, tensors.keys.filter { $0.hasPrefix("grad.") }.count, "\(file): every gradient compared")
        print("\(file): eval output rel. error \(evalError), train output \(trainError), \(compared) gradients, worst \(worst.0) at \(worst.1)")
    }

    func testR2Plus1D18MatchesPyTorch() throws {
        let m = VideoResNet(VideoResNetConfig(kind: .r2plus1d18, width: 0.0625, classes: 10))
        try checkParity("r2plus1d_18_w0625.safetensors", m) { m($0) }
    }

    func testR3D18MatchesPyTorch() throws {
        let m = VideoResNet(VideoResNetConfig(kind: .r3d18, width: 0.0625, classes: 10))
        try checkParity("r3d_18_w0625.safetensors", m) { m($0) }
    }

    func testFrameResNet18MatchesPyTorch() throws {
        let m = FrameResNet(FrameResNetConfig(width: 0.0625, inputChannels: 2, classes: 10))
        try checkParity("resnet18_frames_w0625.safetensors", m) { m($0) }
    }
}
