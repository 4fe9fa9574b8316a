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

    /// The engine configurations compared: every conv on OpenBLAS, blocked im2col on our GEMM,
    /// implicit GEMMs where the routing picks them, and Winograd and the stems' row vectors where they apply.
    public static let configurations: [(name: String, options: (Int) -> EngineOptions)] = [
        ("whole im2col, OpenBLAS", { .reference(threads: $0) }),
        ("blocked im2col", { EngineOptions(threads: $0, blockedConvs: true, implicitConvs: false, winogradConvs: false, stemRowConvs: false) }),
        ("implicit where picked", { EngineOptions(threads: $0, blockedConvs: true, implicitConvs: true, winogradConvs: false, stemRowConvs: false) }),
        ("Winograd and stem rows where they apply", { EngineOptions(threads: $0, blockedConvs: true, implicitConvs: true, winogradConvs: true, stemRowConvs: true) })]

    public struct Row { public var configuration: String, direction: ConvDirection, path: ConvPath, milliseconds: Double, gflops: Double }

    /// Median milliseconds per call of each configuration and direction, with the path the routing took.
    public func run(log: (String) -> Void) -> [Row] {
        var rng = RandomGenerator(seed: 0)
        let x = Tensor.randn(input, rng: &rng, requiresGrad: true), w = Tensor.randn(weight, rng: &rng, requiresGrad: true)
        let g = ConvGeometry(input: input, weight: weight, stride: stride, padding: padding)
        let gy = Tensor.randn(g.outputShape, rng: &rng)
        var samples: [String: [Double]] = [:], paths: [String: ConvPath] = [:]
        for round in 0..<rounds {
            for configuration in Self.configurations {
                let timer = ConvTimer()
                Engine.with(configuration.options(Engine.threads)) {
                    for _ in 0..<(round == 0 ? 2 : 0) { conv3d(x, w, stride: stride, padding: padding).backward(seed: gy) }
                    timer.observing {
                        for _ in 0..<iterations { conv3d(x, w, stride: stride, padding: padding).backward(seed: gy) }
                    }
                }
                for (key, e) in timer.entries {
                    let id = "\(configuration.name)|\(key.direction.rawValue)"
                    samples[id, default: []].append(e.seconds / Double(e.calls))
                    paths[id] = key.path
                }
            }
            log("\r  round \(round + 1)/\(rounds)")
        }
        log("\n")
        let flops = 2 * Double(g.macs.nominal)
        return Self.configurations.flatMap { configuration in
            ConvDirection.allCases.compactMap { direction -> Row? in
                let id = "\(configuration.name)|\(direction.rawValue)"
                guard let s = samples[id], !s.isEmpty, let path = paths[id] else { return nil }
                let seconds = median(s)
                return Row(configuration: configuration.name, direction: direction, path: path, milliseconds: seconds * 1e3, gflops: flops / seconds / 1e9)
            }
        }
    }
}
