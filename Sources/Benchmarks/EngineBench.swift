import Backbones
import Foundation
import Losses
import Tensor

/// `maclr bench engine`: forward and training-step time of a torchvision video ResNet on random
/// clips, with achieved GFLOP/s counted the way benchmarks/torch_reference.py counts them,
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
        let counter = ConvTimer()
        for m in models { m.eval() }
        _ = counter.observing { noGrad { forwardAll() } }
        let linearMACs = models.count * batch * 512 * 128
        let firstConv = zip(models, inputs).map { m, x in
            ConvGeometry(input: x.shape, weight: m.parameters()[0].tensor.shape, stride: [1, 2, 2],
                         padding: kind == .r3d18 ? [1, 3, 3] : [0, 3, 3]).macs
        }
        let firstNominal = firstConv.reduce(0) { $0 + $1.nominal }, firstValid = firstConv.reduce(0) { $0 + $1.valid }
        let fwd = Double(2 * (counter.nominalMACs + linearMACs)), fwdNoPad = Double(2 * (counter.validMACs + linearMACs))
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
        let timer = ConvTimer()
        timer.recording = false
        func trainStep() {
            sgd.zeroGrad()
            let outputs = forwardAll()
            let loss = twoPathways
                ? Contrastive.symmetricInBatch(outputs[0].l2Normalized(), outputs[1].l2Normalized(), temperature: 0.1)
                : softmaxCrossEntropy(outputs[0], labels: labels)
            loss.backward()
            sgd.step()
        }
        func timedStep() { if perLayer { timer.observing(trainStep) } else { trainStep() } }
        // Only timed steps count: the first step's fresh buffers page-fault, which no later step
        // repeats (they come from the pool).
        let step = time("train step", timedStep, afterWarmup: { timer.reset(); timer.recording = true }, log: log)
        if perLayer {
            timer.recording = false
            printConvLayers(timer, log: log, steps: iterations, stepSeconds: step)
            let before = BufferPool.shared.freshBytes, faultsBefore = minorPageFaults()
            trainStep()
            log(String(format: "  fresh (not pooled) buffers: %.1f MiB per step, minor page faults: %d per step\n",
                       Double(BufferPool.shared.freshBytes - before) / Double(1 << 20), minorPageFaults() - faultsBefore))
        }
        let peakAfter = MachinePeak.measure()
        log("  machine peak after: \(peakAfter.summary)\n")
        return Result(forwardSeconds: forward, forwardTrainSeconds: forwardTrain, trainStepSeconds: step,
                      forwardGFLOPs: fwd / 1e9, forwardGFLOPsNoPad: fwdNoPad / 1e9,
                      trainGFLOPs: train / 1e9, trainGFLOPsNoPad: trainNoPad / 1e9,
                      peakRSSGiB: peakRSSGiB(), machinePeak: peakBefore.max(peakAfter))
    }
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
        // one line per timed run: benchmarks/ab.sh reads them all
        log(String(format: "  %@ %d/%d: %.1f ms\n", label, i + 1, iterations, times.last! * 1e3))
    }
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

/// Runs benchmarks/torch_reference.py with the same network and input, when a Python
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
    if Engine.cpuHasAVX512 && !Engine.options.avx512 {
        // the anchor on the same instruction set: ATen's kernels and oneDNN's convs at AVX2
        env["ATEN_CPU_CAPABILITY"] = "avx2"; env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    }
    p.environment = env
    p.standardOutput = FileHandle.standardError
    do { try p.run() } catch { return nil }
    p.waitUntilExit()
    defer { try? FileManager.default.removeItem(at: out) }
    guard p.terminationStatus == 0, let data = FileManager.default.contents(atPath: out.path) else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
}
