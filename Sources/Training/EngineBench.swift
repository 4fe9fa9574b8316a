import Backbones
import Foundation
import Tensor

/// `maclr bench engine`: forward and training-step time of a torchvision video ResNet on random
/// clips, with achieved GFLOP/s counted the way ../shared/bench/torch_reference.py counts them,
/// and the PyTorch figure beside it when a Python with torch is available.
public struct EngineBenchmark {
    public var kind: VideoResNetKind = .r2plus1d18
    public var batch = 8, frames = 8, size = 64
    public var warmup = 2, iterations = 7
    public var perLayer = false
    public init() {}

    public struct Result: Codable {
        public var forwardSeconds: Double, forwardTrainSeconds: Double, trainStepSeconds: Double
        public var forwardGFLOPs: Double, forwardGFLOPsNoPad: Double
        public var trainGFLOPs: Double, trainGFLOPsNoPad: Double
        public var peakRSSGiB: Double
    }

    static func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

    func time(_ label: String, _ body: () -> Void, log: (String) -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for i in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            log(String(format: "\r  %@ %d/%d: %.1f ms", label, i + 1, iterations, times.last! * 1e3))
        }
        log("\n")
        return Self.median(times)
    }

    /// Runs the benchmark, printing progress through `log`.
    public func run(log: (String) -> Void) -> Result {
        let model = VideoResNet(VideoResNetConfig(kind: kind, classes: 128), seed: 0)
        var rng = RandomGenerator(seed: 0)
        let x = Tensor.randn([batch, frames, size, size, 3], rng: &rng)
        let labels = (0..<batch).map { _ in Int(rng.next() % 128) }

        // FLOPs of one forward pass, counted from the conv geometries actually run.
        ConvStats.reset(); ConvStats.enabled = true
        model.eval(); _ = noGrad { model(x) }
        ConvStats.enabled = false
        let linearMACs = batch * 512 * 128
        let firstConv = ConvGeometry(input: x.shape, weight: model.parameters()[0].tensor.shape,
                                     stride: [1, 2, 2], padding: kind == .r3d18 ? [1, 3, 3] : [0, 3, 3]).macs
        let fwd = Double(2 * (ConvStats.nominalMACs + linearMACs)), fwdNoPad = Double(2 * (ConvStats.validMACs + linearMACs))
        let train = 3 * fwd - 2 * Double(firstConv.nominal), trainNoPad = 3 * fwdNoPad - 2 * Double(firstConv.valid)
        log(String(format: "[%@ B=%d T=%d HW=%d threads=%d blas=%@] params=%.2fM fwd=%.2f GFLOP/batch (%.2f excl. pad), train~%.2f (%.2f)\n",
                   kind.rawValue, batch, frames, size, Engine.threads, Engine.blasCore, Double(model.parameterCount) / 1e6,
                   fwd / 1e9, fwdNoPad / 1e9, train / 1e9, trainNoPad / 1e9))

        let forward = time("fwd (eval, no grad)", { _ = noGrad { model(x) } }, log: log)
        model.train(); model.requireGradients()
        let forwardTrain = time("fwd (train, taped)", { _ = model(x) }, log: log)
        let sgd = SGD(model.parameters(), learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4)
        if perLayer { ConvStats.reset() }
        let step = time("train step", {
            sgd.zeroGrad()
            ConvStats.enabled = perLayer
            let loss = softmaxCrossEntropy(model(x), labels: labels)
            loss.backward()
            ConvStats.enabled = false
            sgd.step()
        }, log: log)
        if perLayer { printLayers(log: log, steps: warmup + iterations) }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(forwardSeconds: forward, forwardTrainSeconds: forwardTrain, trainStepSeconds: step,
                      forwardGFLOPs: fwd / 1e9, forwardGFLOPsNoPad: fwdNoPad / 1e9,
                      trainGFLOPs: train / 1e9, trainGFLOPsNoPad: trainNoPad / 1e9,
                      peakRSSGiB: Double(usage.ru_maxrss) / 1024 / 1024)
    }

    /// Time and GFLOP/s per conv shape and direction, slowest first.
    func printLayers(log: (String) -> Void, steps: Int) {
        log("  per conv shape over the training steps (time per step, nominal GFLOP/s):\n")
        let total = ConvStats.entries.values.reduce(0) { $0 + $1.seconds }
        for (key, e) in ConvStats.entries.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            log(String(format: "    %-48@ %7.1f ms  %6.1f GFLOP/s  (%d calls)\n", key as NSString, e.seconds / Double(steps) * 1e3,
                       e.flops / e.seconds / 1e9, e.calls))
        }
        log(String(format: "    all convs: %.1f ms per step\n", total / Double(steps) * 1e3))
    }
}

/// Runs ../shared/bench/torch_reference.py with the same network and input, when a Python
/// with torch is available, and returns its JSON figures.
public func runTorchReference(python: String, script: String, kind: VideoResNetKind, batch: Int, frames: Int, size: Int,
                              threads: Int, channelsLast: Bool, tuned: Bool) -> [String: Any]? {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("torchref-\(getpid())-\(channelsLast).json")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [script, "--model", kind.rawValue, "--B", "\(batch)", "--T", "\(frames)", "--HW", "\(size)",
                   "--threads", "\(threads)", "--json", out.path] + (channelsLast ? ["--channels-last"] : [])
    var env = ProcessInfo.processInfo.environment
    if tuned { env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184" }
    p.environment = env
    p.standardOutput = FileHandle.standardError
    do { try p.run() } catch { return nil }
    p.waitUntilExit()
    guard p.terminationStatus == 0, let data = FileManager.default.contents(atPath: out.path) else { return nil }
    try? FileManager.default.removeItem(at: out)
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
}
