import Backbones
import Foundation
import Tensor
import XCTest

/// A tiny R(2+1)D learns the direction of a moving square: appearance is the same in every
/// class, only motion tells them apart.
final class ToyTrainingTests: XCTestCase {
    /// (N, T, H, W, 1) clips of a bright 3x3 square moving one pixel per frame in one of four
    /// directions from a random start, over a noisy background.
    func movingSquares(count: Int, frames: Int = 4, size: Int = 12, rng: inout RandomGenerator) -> (Tensor, [Int]) {
        let x = Tensor.zeros([count, frames, size, size, 1])
        var labels: [Int] = []
        let moves = [(0, 1), (0, -1), (1, 0), (-1, 0)]
        for n in 0..<count {
            let label = n % 4
            labels.append(label)
            let (dy, dx) = moves[label]
            let y0 = 3 + Int(rng.uniform() * Float(size - 9)), x0 = 3 + Int(rng.uniform() * Float(size - 9))
            for t in 0..<frames {
                for i in 0..<size { for j in 0..<size { x.data[(((n * frames + t) * size + i) * size + j)] = 0.1 * rng.normal() } }
                for i in 0..<3 { for j in 0..<3 {
                    let yy = y0 + dy * t + i, xx = x0 + dx * t + j
                    x.data[(((n * frames + t) * size + yy) * size + xx)] = 1
                }}
            }
        }
        return (x, labels)
    }

    func testSGDReachesFullTrainingAccuracyOnMotionDirection() {
        var rng = RandomGenerator(seed: 7)
        let (x, labels) = movingSquares(count: 32, rng: &rng)
        let model = VideoResNet(VideoResNetConfig(kind: .r2plus1d18, width: 0.125, blocksPerStage: [1, 1, 1, 1],
                                                  inputChannels: 1, classes: 4), seed: 3)
        model.requireGradients()
        let sgd = SGD(model.parameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: true)
        var accuracy: Float = 0
        var firstLoss: Float = 0, lastLoss: Float = 0
        for step in 0..<150 {
            model.train()
            sgd.zeroGrad()
            let loss = softmaxCrossEntropy(model(x), labels: labels)
            if step == 0 { firstLoss = loss.item() }
            lastLoss = loss.item()
            loss.backward()
            sgd.step()
            if step % 10 == 9 {
                model.eval()
                let predicted = argmaxRows(noGrad { model(x) })
                accuracy = Float(zip(predicted, labels).filter { $0 == $1 }.count) / Float(labels.count)
                if accuracy == 1 { break }
            }
        }
        XCTAssertEqual(accuracy, 1, "training accuracy (eval-mode BN) after SGD; loss \(firstLoss) -> \(lastLoss)")
        XCTAssertLessThan(lastLoss, firstLoss)
    }
}
