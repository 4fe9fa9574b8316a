import Backbones
import Foundation
import Losses
import Tensor

/// `maclr bench engine`: forward and training-step time of a torchvision video ResNet on random
/// clips, with achieved GFLOP/s counted the way ../shared/bench/torch_reference.py counts them,
/// and the PyTorch figure beside it when a Python with torch is available. With `twoPathways`,
/// the reference's `--mode twopath`: an RGB and a 2-channel flow network, symmetric in-batch
/// InfoNCE between their outputs (the MaCLR-shaped step).
public struct EngineBenchmark {
    public var kind: VideoResNetKind = .r2plus1d18
    public var twoPathways = false
    public var batch = 8, frames = 8, size = 64
    public var warmup = 2, iterations = 7
    public var perLayer = false
    public init() {}

    public struct Result: Codable {
        public var forwardSeconds: Double, forwardTrainSeconds: Double, trainStepSeconds: Double
        public var forwardGFLOPs: Double, forwardGFLOPsNoPad: Double
        public var trainGFLOPs: Double, trainGFLOPsNoPad: Double
        public var peakRSSGiB: Double
        /// The machine's FMA and sgemm peaks, measured before and after the timed runs (the
        /// larger of each): the clock moves from run to run on this machine.
        public var machinePeak: MachinePeak
    }

    func time(_ label: String, _ body: () -> Void, afterWarmup: () -> Void = {}, log: (String) -> Void) -> Double {
        medianSeconds(label, warmup: warmup, iterations: iterations, body, afterWarmup: afterWarmup, log: log)
    }

    /// Runs the benchmark, printing progress through `log`.
    public func run(log: (String) -> Void) -> Result {
        let channels = twoPathways ? [3, 2] : [3]
        let models = channels.map { VideoResNet(VideoResNetConfig(kind: kind, inputChannels: $0, classes: 128), seed: 0) }
        var rng = RandomGenerator(seed: 0)
        let inputs = channels.map { Tensor.randn([batch, frames, size, size, $0], rng: &rng) }
        let labels = (0..<batch).map { _ in Int(rng.next() % 128) }
        func forwardAll() -> [Tensor] { zip(models, inputs).map { $0($1) } }

        // FLOPs of one forward pass, counted from the conv geometries actually run.
        ConvStats.reset(); ConvStats.enabled = true
        for m in models { m.eval() }
        _ = noGrad { forwardAll() }
        ConvStats.enabled = false
        let linearMACs = models.count * batch * 512 * 128
        let firstConv = zip(models, inputs).map { m, x in
            ConvGeometry(input: x.shape, weight: m.parameters()[0].tensor.shape, stride: [1, 2, 2],
                         padding: kind == .r3d18 ? [1, 3, 3] : [0, 3, 3]).macs
        }
        let firstNominal = firstConv.reduce(0) { $0 + $1.nominal }, firstValid = firstConv.reduce(0) { $0 + $1.valid }
        let fwd = Double(2 * (ConvStats.nominalMACs + linearMACs)), fwdNoPad = Double(2 * (ConvStats.validMACs + linearMACs))
        let train = 3 * fwd - 2 * Double(firstNominal), trainNoPad = 3 * fwdNoPad - 2 * Double(firstValid)
        log(String(format: "[%@%@ B=%d T=%d HW=%d threads=%d GEMMs: %@] params=%.2fM fwd=%.2f GFLOP/batch (%.2f excl. pad), train~%.2f (%.2f)\n",
                   kind.rawValue, twoPathways ? " two pathways" : "", batch, frames, size, Engine.threads, Engine.gemmDescription,
                   Double(models.reduce(0) { $0 + $1.parameterCount }) / 1e6, fwd / 1e9, fwdNoPad / 1e9, train / 1e9, trainNoPad / 1e9))

        let peakBefore = MachinePeak.measure()
        log("  machine peak before: \(peakBefore.summary)\n")
        let forward = time("fwd (eval, no grad)", { _ = noGrad { forwardAll() } }, log: log)
        for m in models { m.train(); m.requireGradients() }
        let forwardTrain = time("fwd (train, taped)", { _ = forwardAll() }, log: log)
        let sgd = SGD(models.flatMap { $0.parameters() }, learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4)
        func trainStep() {
            sgd.zeroGrad()
            ConvStats.enabled = perLayer
            let outputs = forwardAll()
            let loss = twoPathways
                ? Contrastive.symmetricInBatch(outputs[0].l2Normalized(), outputs[1].l2Normalized(), temperature: 0.1)
                : softmaxCrossEntropy(outputs[0], labels: labels)
            loss.backward()
            ConvStats.enabled = false
            sgd.step()
        }
        // Only timed steps count: the first step's fresh buffers page-fault, which no later step
        // repeats (they come from the pool).
        let step = time("train step", trainStep, afterWarmup: { ConvStats.reset() }, log: log)
        if perLayer {
            printConvLayers(log: log, steps: iterations, stepSeconds: step)
            let before = BufferPool.shared.freshBytes, faultsBefore = minorPageFaults(), waitBefore = WorkerPool.shared.callerWaitNanoseconds
            trainStep()
            log(String(format: "  fresh (not pooled) buffers: %.1f MiB per step, minor page faults: %d per step\n",
                       Double(BufferPool.shared.freshBytes - before) / Double(1 << 20), minorPageFaults() - faultsBefore))
            log(String(format: "  calling thread waiting for the workers at the end of parallel regions: %.1f ms per step\n",
                       Double(WorkerPool.shared.callerWaitNanoseconds - waitBefore) / 1e6))
        }
        let peakAfter = MachinePeak.measure()
        log("  machine peak after: \(peakAfter.summary)\n")
        return Result(forwardSeconds: forward, forwardTrainSeconds: forwardTrain, trainStepSeconds: step,
                      forwardGFLOPs: fwd / 1e9, forwardGFLOPsNoPad: fwdNoPad / 1e9,
                      trainGFLOPs: train / 1e9, trainGFLOPsNoPad: trainNoPad / 1e9,
                      peakRSSGiB: peakRSSGiB(), machinePeak: peakBefore.max(peakAfter))
    }
}

/// Time and GFLOP/s per conv shape and direction, slowest first: the whole kernel, the part
/// inside sgemm (for blocked-im2col convs, the whole blocked loop, im2col included), and a
/// bare sgemm of the same shapes by OpenBLAS and by ours timed here (BLAS/GEMM of 1 or more
/// means the conv runs its GEMMs at least at OpenBLAS's speed; "other" is im2col, col2im and
/// zeroing).
public func printConvLayers(log: (String) -> Void, steps: Int, stepSeconds: Double) {
    log("  per conv shape and direction, per training step (GEMMs: \(Engine.gemmDescription)):\n")
    log(String(format: "    %-46@ %8@ %8@ %8@ %9@ %9@ %9@ %7@\n", "conv" as NSString, "total" as NSString, "GEMM" as NSString,
               "other" as NSString, "GEMM GF/s" as NSString, "BLAS GF/s" as NSString, "ours GF/s" as NSString,
               "BLAS/GEMM" as NSString))
    // Bare timings of each shape by both backends: "ours" well above "GEMM" means the shape
    // is fine and the conv's context (cold operands, cache conflicts) is what is slow.
    var bareCache: [Engine.GEMMBackend: [GEMMShape: Double]] = [:]
    func bareSeconds(_ e: ConvStats.Entry, _ backend: Engine.GEMMBackend) -> Double {
        e.gemms.reduce(0.0) { sum, item in
            if bareCache[backend, default: [:]][item.key] == nil { bareCache[backend, default: [:]][item.key] = timeBareGEMM(item.key, backend: backend) }
            return sum + bareCache[backend]![item.key]! * Double(item.value)
        }
    }
    var total = 0.0, gemm = 0.0, bare = 0.0
    for (key, e) in ConvStats.entries.sorted(by: { $0.value.seconds > $1.value.seconds }) {
        let gemmFlops = e.gemms.reduce(0.0) { $0 + $1.key.flops * Double($1.value) }
        let blas = bareSeconds(e, .openblas), ours = bareSeconds(e, .packed)
        let per = 1 / Double(steps)
        total += e.seconds * per; gemm += e.gemmSeconds * per; bare += blas * per
        log(String(format: "    %-46@ %6.1fms %6.1fms %6.1fms %9.1f %9.1f %9.1f %7.2f\n", key as NSString, e.seconds * per * 1e3,
                   e.gemmSeconds * per * 1e3, (e.seconds - e.gemmSeconds) * per * 1e3,
                   gemmFlops / e.gemmSeconds / 1e9, gemmFlops / blas / 1e9, gemmFlops / ours / 1e9, blas / e.gemmSeconds))
    }
    log(String(format: "  training step %.1f ms: convs %.1f ms (GEMM %.1f ms, a bare OpenBLAS sgemm of the same shapes %.1f ms; im2col/col2im/zeroing %.1f ms), everything else %.1f ms\n",
               stepSeconds * 1e3, total * 1e3, gemm * 1e3, bare * 1e3, (total - gemm) * 1e3, (stepSeconds - total) * 1e3))
}

/// Median seconds of `body` over `iterations` runs after `warmup` untimed ones, each shown
/// through `log` as it finishes.
func medianSeconds(_ label: String, warmup: Int, iterations: Int, _ body: () -> Void, afterWarmup: () -> Void = {},
                   log: (String) -> Void) -> Double {
    median(timedSeconds(label, warmup: warmup, iterations: iterations, body, afterWarmup: afterWarmup, log: log))
}

/// The middle value (the upper one of an even count).
public func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Seconds of each of `iterations` runs of `body` after `warmup` untimed ones.
func timedSeconds(_ label: String, warmup: Int, iterations: Int, _ body: () -> Void, afterWarmup: () -> Void = {},
                  log: (String) -> Void) -> [Double] {
    for _ in 0..<warmup { body() }
    afterWarmup()
    var times: [Double] = []
    for i in 0..<iterations {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        log(String(format: "\r  %@ %d/%d: %.1f ms", label, i + 1, iterations, times.last! * 1e3))
    }
    log("\n")
    return times
}

/// This process's resident-set high-water mark, in GiB.
func peakRSSGiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024 / 1024
}

/// Minor page faults of this process so far (each a fresh page the kernel zeroed).
func minorPageFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_minflt
}

/// Runs ../shared/bench/torch_reference.py with the same network and input, when a Python
/// with torch is available, and returns its JSON figures.
public func runTorchReference(python: String, script: String, kind: VideoResNetKind, twoPathways: Bool = false,
                              batch: Int, frames: Int, size: Int, threads: Int, channelsLast: Bool, tuned: Bool) -> [String: Any]? {
    runPythonBenchmark(python: python, arguments: [script, "--model", kind.rawValue, "--B", "\(batch)", "--T", "\(frames)", "--HW", "\(size)",
                                                   "--threads", "\(threads)"] + (channelsLast ? ["--channels-last"] : [])
                                                   + (twoPathways ? ["--mode", "twopath"] : []),
                       tuned: tuned)
}

/// Runs a Python benchmark script with `arguments` plus `--json FILE` (its output shown on our
/// stderr) and returns the JSON it wrote, or nil when it could not run. `tuned` gives it a
/// malloc that keeps its buffers, as the PyTorch reference's tuned figures use.
func runPythonBenchmark(python: String, arguments: [String], tuned: Bool) -> [String: Any]? {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("maclr-bench-\(getpid())-\(UUID().uuidString).json")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = arguments + ["--json", out.path]
    var env = ProcessInfo.processInfo.environment
    if tuned { env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184" }
    p.environment = env
    p.standardOutput = FileHandle.standardError
    do { try p.run() } catch { return nil }
    p.waitUntilExit()
    defer { try? FileManager.default.removeItem(at: out) }
    guard p.terminationStatus == 0, let data = FileManager.default.contents(atPath: out.path) else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
}
