import Foundation
import Tensor

/// `maclr bench conv`: one conv shape's forward, input and weight gradients under each of the
/// engine's conv paths (the whole im2col matrix on OpenBLAS, blocked im2col on our GEMM, and
/// with implicit GEMMs where the engine picks them), the paths taking turns round by round so
/// that a shared machine's drift falls on all of them alike.
public struct ConvBenchmark {
    public var input: [Int], weight: [Int], stride: [Int], padding: [Int]
    public var rounds = 5, iterations = 5
    public init(input: [Int], weight: [Int], stride: [Int], padding: [Int]) {
        self.input = input; self.weight = weight; self.stride = stride; self.padding = padding
    }

    /// A conv path: (name, Engine.fusedConv, Engine.implicitConv).
    public static let paths: [(name: String, fused: Bool, implicit: Bool)] = [
        ("whole im2col, OpenBLAS", false, false), ("blocked im2col", true, false), ("implicit where picked", true, true)]

    public struct Row { public var path: String, direction: String, milliseconds: Double, gflops: Double }

    /// Median milliseconds per call of each path and direction ("fwd", "dx ", "dw ").
    public func run(log: (String) -> Void) -> [Row] {
        var rng = RandomGenerator(seed: 0)
        let x = Tensor.randn(input, rng: &rng, requiresGrad: true), w = Tensor.randn(weight, rng: &rng, requiresGrad: true)
        let g = ConvGeometry(input: input, weight: weight, stride: stride, padding: padding)
        let gy = Tensor.randn(g.outputShape, rng: &rng)
        let saved = (Engine.fusedConv, Engine.implicitConv)
        defer { (Engine.fusedConv, Engine.implicitConv) = saved }
        var samples: [String: [Double]] = [:]
        for round in 0..<rounds {
            for path in Self.paths {
                (Engine.fusedConv, Engine.implicitConv) = (path.fused, path.implicit)
                for _ in 0..<(round == 0 ? 2 : 0) { conv3d(x, w, stride: stride, padding: padding).backward(seed: gy) }
                ConvStats.reset(); ConvStats.enabled = true
                for _ in 0..<iterations { conv3d(x, w, stride: stride, padding: padding).backward(seed: gy) }
                ConvStats.enabled = false
                for (key, e) in ConvStats.entries { samples["\(path.name)|\(key.prefix(3))", default: []].append(e.seconds / Double(e.calls)) }
            }
            log("\r  round \(round + 1)/\(rounds)")
        }
        log("\n")
        let flops = 2 * Double(g.macs.nominal)
        return Self.paths.flatMap { path in
            ["fwd", "dx ", "dw "].compactMap { direction -> Row? in
                guard let s = samples["\(path.name)|\(direction)"], !s.isEmpty else { return nil }
                let seconds = median(s)
                return Row(path: path.name, direction: direction, milliseconds: seconds * 1e3, gflops: flops / seconds / 1e9)
            }
        }
    }
}
