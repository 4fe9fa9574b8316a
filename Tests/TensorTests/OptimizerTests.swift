import Foundation
import Tensor
import XCTest

final class OptimizerTests: XCTestCase {
    func testSGDMomentumNesterovAndDecayExemption() {
        let p = Tensor(shape: [1], data: [1], requiresGrad: true)
        let bias = Tensor(shape: [1], data: [1], requiresGrad: true)
        let sgd = SGD([Parameter(name: "w", tensor: p, decays: true), Parameter(name: "b", tensor: bias, decays: false)],
                      learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true)
        // hand computation, PyTorch's rule: d = g + wd*w; buf = m*buf + d; w -= lr*(d + m*buf)
        var w = 1.0, buf = 0.0, b = 1.0, bufB = 0.0
        for _ in 0..<3 {
            p.grad = Tensor(shape: [1], data: [Float(2 * w)])      // loss w^2
            bias.grad = Tensor(shape: [1], data: [Float(2 * b)])
            sgd.step()
            let d = 2 * w + 0.01 * w
            buf = 0.9 * buf + d; w -= 0.1 * (d + 0.9 * buf)
            let dB = 2 * b
            bufB = 0.9 * bufB + dB; b -= 0.1 * (dB + 0.9 * bufB)
        }
        XCTAssertEqual(Double(p.data[0]), w, accuracy: 1e-6)
        XCTAssertEqual(Double(bias.data[0]), b, accuracy: 1e-6)
    }

    func testAdamWByHand() {
        let p = Tensor(shape: [1], data: [0.5], requiresGrad: true)
        let opt = AdamW([Parameter(name: "w", tensor: p, decays: true)], learningRate: 0.01, weightDecay: 0.1)
        var w = 0.5, m = 0.0, v = 0.0
        for t in 1...4 {
            let g = 3 * w * w
            p.grad = Tensor(shape: [1], data: [Float(g)])
            opt.step()
            w *= 1 - 0.01 * 0.1
            m = 0.9 * m + 0.1 * g; v = 0.999 * v + 0.001 * g * g
            w -= 0.01 * (m / (1 - pow(0.9, Double(t)))) / ((v / (1 - pow(0.999, Double(t)))).squareRoot() + 1e-8)
        }
        XCTAssertEqual(Double(p.data[0]), w, accuracy: 1e-6)
        XCTAssertEqual(opt.stateTensors()["step"]!.item(), 4)
    }

    func testOptimizerStateRoundTrips() throws {
        let p = Tensor(shape: [2], data: [1, 2], requiresGrad: true)
        let a = SGD([Parameter(name: "w", tensor: p, decays: true)], learningRate: 0.1)
        p.grad = Tensor(shape: [2], data: [1, 1]); a.step()
        let b = SGD([Parameter(name: "w", tensor: p, decays: true)], learningRate: 0.1)
        try b.loadState(a.stateTensors())
        XCTAssertEqual(b.stateTensors()["momentum.w"]!.toArray(), a.stateTensors()["momentum.w"]!.toArray())
        XCTAssertThrowsError(try b.loadState([:]))
    }

    func testWarmupCosineSchedule() {
        let s = WarmupCosineSchedule(baseLR: 1, warmupSteps: 4, totalSteps: 14, minLR: 0.1)
        XCTAssertEqual(s.learningRate(at: 0), 0.25, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 3), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 4), 1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 9), 0.55, accuracy: 1e-6)    // halfway: min + (base-min)/2
        XCTAssertEqual(s.learningRate(at: 14), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(at: 100), 0.1, accuracy: 1e-6)
    }
}
