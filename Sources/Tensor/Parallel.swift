import CBLAS
import Dispatch
import Foundation
import Synchronization

/// How the engine runs, set once by whoever drives it (the command line, a test, a benchmark)
/// and read by the kernels. Nothing in the engine reads the environment.
public struct EngineOptions: Sendable, Equatable {
    /// Threads of our loops and GEMM splits (OpenBLAS itself stays at one).
    public var threads: Int
    /// Whether convs may run on our packed GEMM (`ConvPath.blockedIm2col`, `.temporalBlocked`):
    /// im2col block by block into an L2-sized buffer instead of one matrix handed to `sgemm`.
    /// Our microkernels are 16 floats wide, so they pay only on a build compiled for an AVX-512
    /// CPU (`-target-cpu native`, Package.swift); elsewhere OpenBLAS's kernels run every conv.
    public var blockedConvs: Bool
    /// Whether, with `blockedConvs`, the convs whose geometry suits them run as implicit GEMMs
    /// (`ConvPath.implicitGEMM`, `.temporalImplicit`): input runs read in place through pointer
    /// tables, no im2col block written.
    public var implicitConvs: Bool
    /// Whether the convs with a 3x3 spatial kernel at stride 1 whose geometry suits it run as
    /// Winograd F(2x2, 3x3) (`ConvPath.winograd`): 16 products per 2x2 output tile and channel
    /// pair instead of 36, its GEMMs on OpenBLAS (so AVX2 builds have it too).
    public var winogradConvs: Bool
    /// Whether convs with few input and output channels (the stems) run on vectors along the
    /// output row (`ConvPath.stemRows`), 16 wide with `avx512`, else 8.
    public var stemRowConvs: Bool
    /// Whether, without `blockedConvs`, convs may still run blocked im2col (`ConvPath.blockedIm2col`)
    /// with OpenBLAS multiplying each block; off in the reference, which keeps the whole matrix.
    public var blockedBLASConvs: Bool
    /// Whether the engine may run AVX-512 kernels (our 16-wide microkernels, and the peak probe's
    /// 16-wide loop). Off on a CPU without it, and when forced off (`EngineOptions.avx2`) so an
    /// AVX-512 machine measures the paths an AVX2 CPU runs.
    public var avx512: Bool

    public init(threads: Int = EngineOptions.cores, blockedConvs: Bool = EngineOptions.packedGEMMPays,
                implicitConvs: Bool = true, winogradConvs: Bool = true, stemRowConvs: Bool = true,
                blockedBLASConvs: Bool = true, avx512: Bool = Engine.cpuHasAVX512) {
        self.threads = max(1, threads); self.blockedConvs = blockedConvs; self.implicitConvs = implicitConvs
        self.winogradConvs = winogradConvs; self.stemRowConvs = stemRowConvs; self.blockedBLASConvs = blockedBLASConvs
        self.avx512 = avx512 && Engine.cpuHasAVX512
    }

    /// The cores online: the default thread count.
    public static var cores: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Whether this build runs our packed GEMM at full width: compiled for its CPU, and that CPU has AVX-512.
    public static let packedGEMMPays: Bool = {
        #if MACLR_NATIVE
        return Engine.cpuHasAVX512
        #else
        return false
        #endif
    }()

    /// What an AVX2-only CPU runs: every GEMM through OpenBLAS (whose AVX2 kernels
    /// `BLASKernels.selectBeforeUse` must have chosen when it loaded), Winograd's and the blocked
    /// im2col's included, no AVX-512 microkernel; the stems' row vectors 8 wide.
    public static func avx2(threads: Int = EngineOptions.cores) -> EngineOptions {
        EngineOptions(threads: threads, blockedConvs: false, implicitConvs: false, winogradConvs: true, stemRowConvs: true, avx512: false)
    }

    /// The plainest configuration: every conv on OpenBLAS, the whole-matrix and per-tap paths.
    public static func reference(threads: Int = EngineOptions.cores) -> EngineOptions {
        EngineOptions(threads: threads, blockedConvs: false, implicitConvs: false, winogradConvs: false, stemRowConvs: false,
                      blockedBLASConvs: false)
    }
}

/// Who owns the threads: we do. OpenBLAS runs single-threaded, and `sgemm` splits a large
/// product across our threads, so GEMMs and our own loops (`parallelFor`) share one pool and no
/// OpenBLAS worker spins (sched_yield) beside our loops on a machine with few cores.
public enum Engine {
    /// The options in force; the machine's cores and the fastest conv paths by default.
    nonisolated(unsafe) public static var options = EngineOptions() {
        didSet { openblas_set_num_threads(1) }
    }

    /// Set once before the first product: OpenBLAS must not start threads of its own.
    private static let singleThreadedBLAS: Void = openblas_set_num_threads(1)

    public static var threads: Int { _ = singleThreadedBLAS; return options.threads }

    /// Watches every conv kernel when set (`ConvObserver`): benchmarks time layers with it.
    nonisolated(unsafe) public static var convObserver: ConvObserver?

    /// Runs `body` under `options`, then restores the previous ones (tests compare paths this way).
    public static func with<R>(_ options: EngineOptions, _ body: () throws -> R) rethrows -> R {
        let saved = self.options
        self.options = options
        defer { self.options = saved }
        return try body()
    }

    /// The OpenBLAS kernel family in use (e.g. "Haswell", "SkylakeX").
    public static var blasCore: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// What runs the GEMMs, for benchmark headers: e.g. "OpenBLAS SkylakeX; blocked-im2col convs by ours".
    public static var gemmDescription: String {
        "OpenBLAS \(blasCore)" + (Engine.cpuHasAVX512 && !options.avx512 ? "; AVX-512 kernels off (AVX2 forced)" : "") + (options.blockedConvs ? "; blocked-im2col convs by ours" + (options.implicitConvs ? ", implicit GEMM where faster" : "") : "")
    }

    /// Reads the first "flags" line of /proc/cpuinfo with stdio: the file reports size 0, so
    /// whole-file readers that trust stat() see it empty.
    public static let cpuHasAVX512: Bool = {
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let set = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            return ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(set.contains)
        }
        return false
    }()
}

/// Runs `body(start, end)` over contiguous ranges covering `0..<count` once, on up to
/// `Engine.threads` threads that claim the ranges in turn (`parallelClaims`; a thread may get
/// several). Work below `minPerThread` items per thread runs on the calling thread.
@inline(__always)
public func parallelFor(_ count: Int, minPerThread: Int = 32_768, _ body: (Int, Int) -> Void) {
    guard chunkCount(count, minPerThread: minPerThread) > 1 else {
        if count > 0 { body(0, count) }
        return
    }
    parallelClaims(count, grain: claimGrain(count)) { claims in
        for range in claims { body(range.lowerBound, range.upperBound) }
    }
}

/// The number of threads worth using on `count` items, at least `minPerThread` each.
public func chunkCount(_ count: Int, minPerThread: Int = 32_768) -> Int {
    min(Engine.threads, max(1, count / max(minPerThread, 1)))
}

/// Runs `body` once on each of up to `Engine.threads` threads, each iterating its `claims` for
/// grains of `grain` items of 0..<count until none is left. Thread i first works through its
/// own contiguous share of the grains in order (as a fixed split would: the data an op writes
/// stays in the cache of the core that reads it next), then takes the next unclaimed grains of
/// the others' shares, so a thread that starts late or runs slow (a parked worker waking, a
/// core shared with a neighbour) does not keep the rest waiting at the end. Grain g is always
/// items g*grain..<(g+1)*grain, but which thread takes it varies from run to run: sum partial
/// results per grain (`range.lowerBound / grain`), never per thread, so the sums stay
/// reproducible.
public func parallelClaims(_ count: Int, grain: Int, _ body: (_ claims: GrainClaims) -> Void) {
    guard count > 0 else { return }
    let grain = max(1, grain), grains = (count + grain - 1) / grain
    let threads = min(Engine.threads, grains)
    let shareGrains = (grains + threads - 1) / threads
    let shares = (0..<threads).map { t in GrainShare(first: t * shareGrains, end: min(grains, (t + 1) * shareGrains)) }
    if threads <= 1 { body(GrainClaims(count: count, grain: grain, shares: shares, thread: 0)); return }
    WorkerPool.shared.run(threads) { t in body(GrainClaims(count: count, grain: grain, shares: shares, thread: t)) }
}

/// One thread's view of a `parallelClaims` region: its own share's grains, then the others'.
public struct GrainClaims: Sequence, IteratorProtocol {
    let count: Int, grain: Int
    private let shares: [GrainShare]
    /// The share being drawn from, and how many shares have run dry for this thread.
    private var current: Int, exhausted = 0

    init(count: Int, grain: Int, shares: [GrainShare], thread: Int) {
        self.count = count; self.grain = grain; self.shares = shares; current = thread
    }

    public mutating func next() -> Range<Int>? {
        while exhausted < shares.count {
            let share = shares[current]
            let g = share.next.add(1, ordering: .relaxed).oldValue
            if g < share.end {
                let start = g * grain
                return start..<Swift.min(count, start + grain)
            }
            exhausted += 1
            current = (current + 1) % shares.count
        }
        return nil
    }
}

/// A contiguous run of grains, handed out front to back to whichever thread asks.
final class GrainShare: Sendable {
    let next: Atomic<Int>
    let end: Int
    init(first: Int, end: Int) { next = Atomic(first); self.end = end }
}

/// A grain for `parallelClaims`: about 1/`grainsPerThread` of each thread's share of `count`
/// items, at least `minGrain`.
public func claimGrain(_ count: Int, minGrain: Int = 1, grainsPerThread: Int = 8) -> Int {
    max(minGrain, 1, (count + Engine.threads * grainsPerThread - 1) / (Engine.threads * grainsPerThread))
}

/// Runs `body(i)` for every i in 0..<count on up to `threads` threads, each taking the next index
/// when it is free: for items of uneven cost (videos, frame pairs).
public func parallelDynamic(_ count: Int, threads: Int = Engine.threads, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let lock = NSLock()
    var next = 0
    DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in
        while true {
            lock.lock(); let i = next; next += 1; lock.unlock()
            if i >= count { return }
            body(i)
        }
    }
}

/// The engine's threads: `Engine.threads - 1` workers that run chunks beside the calling thread.
/// A step of the quickstart network runs hundreds of short parallel regions; handing each to
/// libdispatch (`concurrentPerform`) woke a parked worker through the kernel every time, and the
/// caller, done with its own chunk, waited for the late starter. Our workers spin for a while
/// after each region (`spinNanoseconds`) so the next one starts at once, and park on a condition
/// variable when the engine is idle, so a data loader or a quiet process keeps its cores.
/// Regions do not nest: one started inside another (or while another thread's runs) runs its
/// chunks in order on the calling thread.
public final class WorkerPool: @unchecked Sendable {
    public static let shared = WorkerPool()
    /// How long a worker polls for the next region before parking: long enough to span the
    /// serial bookkeeping between two ops, short enough not to hold a core through data loading.
    static let spinNanoseconds: UInt64 = 200_000

    /// Bumped once per region; a worker runs a region when it sees a new value.
    private let generation = Atomic<Int>(0)
    /// Workers that have not yet finished the current region.
    private let pending = Atomic<Int>(0)
    /// Set while a region runs (nested and concurrent callers run inline).
    private let busy = Atomic<Bool>(false)
    private let parked = Atomic<Int>(0)
    private let parking = NSCondition()
    /// The current region, written before `generation` is bumped and read after it is seen.
    nonisolated(unsafe) private var region: (chunks: Int, body: (Int) -> Void)?
    /// Started workers; worker w runs chunk w (chunk 0 is the caller's).
    private var workers = 0

    /// Runs `body(i)` for i in 0..<chunks, chunk 0 on the calling thread.
    public func run(_ chunks: Int, _ body: (Int) -> Void) {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<chunks { body(i) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        while workers < chunks - 1 { startWorker(workers + 1); workers += 1 }
        withoutActuallyEscaping(body) { body in
            region = (chunks, body)
            pending.store(workers, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if parked.load(ordering: .sequentiallyConsistent) > 0 { parking.lock(); parking.broadcast(); parking.unlock() }
            body(0)
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 100_000 { sched_yield() }
            }
            region = nil
        }
    }

    private func startWorker(_ index: Int) {
        let seen = generation.load(ordering: .acquiring)
        let thread = Thread { [self] in work(index, seen: seen) }
        thread.name = "maclr-worker-\(index)"
        thread.start()
    }

    private func work(_ index: Int, seen start: Int) {
        var seen = start
        while true {
            seen = waitForRegion(after: seen)
            if let (chunks, body) = region, index < chunks { body(index) }
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// Spins, then parks, until `generation` moves past `seen`; returns its new value.
    private func waitForRegion(after seen: Int) -> Int {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        var polls = 0
        while true {
            let now = generation.load(ordering: .acquiring)
            if now != seen { return now }
            polls += 1
            if polls & 255 == 0 && DispatchTime.now().uptimeNanoseconds > deadline { break }
        }
        parking.lock()
        defer { parking.unlock() }
        parked.add(1, ordering: .sequentiallyConsistent)
        defer { parked.subtract(1, ordering: .sequentiallyConsistent) }
        while generation.load(ordering: .sequentiallyConsistent) == seen { parking.wait() }
        return generation.load(ordering: .acquiring)
    }
}
