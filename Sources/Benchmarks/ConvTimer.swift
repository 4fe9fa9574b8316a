import Foundation
import Tensor

/// The shape of one sgemm call, row-major as `sgemm` takes it.
public struct GEMMShape: Hashable, Sendable {
    public var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// The one GEMM of the whole-matrix path for `direction` of a conv (all rows, all columns):
    /// the product a conv kernel of any path computes, to time a bare sgemm of beside it.
    public init(_ g: ConvGeometry, _ direction: ConvDirection) {
        let rows = g.n * g.rowsPerSample, k = g.columns
        switch direction {
        case .forward: self.init(transA: false, transB: true, m: rows, n: g.o, k: k, lda: k, ldb: k, ldc: g.o)
        case .inputGrad: self.init(transA: false, transB: false, m: rows, n: k, k: g.o, lda: g.o, ldb: k, ldc: k)
        case .weightGrad: self.init(transA: true, transB: false, m: g.o, n: k, k: rows, lda: g.o, ldb: k, ldc: k)
        }
    }

    public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k; self.lda = lda; self.ldb = ldb; self.ldc = ldc
    }
}

/// Seconds of one bare `sgemm` of `shape` on buffers of its own (median of `repeats` after a
/// warm-up), split across the engine's threads as every product is.
public func timeBareGEMM(_ shape: GEMMShape, repeats: Int = 5) -> Double {
    let rowsA = shape.transA ? shape.k : shape.m, rowsB = shape.transB ? shape.n : shape.k
    let a = Tensor(shape: [rowsA * shape.lda], data: (0..<(rowsA * shape.lda)).map { Float($0 % 7) * 0.1 })
    let b = Tensor(shape: [rowsB * shape.ldb], data: (0..<(rowsB * shape.ldb)).map { Float($0 % 5) * 0.1 })
    let c = Tensor.zeros([shape.m * shape.ldc])
    var times: [Double] = []
    for r in 0...repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        sgemm(shape.transA, shape.transB, shape.m, shape.n, shape.k, 1, a.data, shape.lda, b.data, shape.ldb, 0, c.data, shape.ldc)
        if r > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
    }
    return median(times)
}

/// Times every conv kernel the engine runs while it is installed (`Engine.convObserver`), per
/// direction, geometry and path, and counts the forward multiply-adds.
public final class ConvTimer: ConvObserver {
    public struct Key: Hashable, Sendable { public var direction: ConvDirection, geometry: ConvGeometry, path: ConvPath }
    public struct Entry: Sendable { public var calls = 0, seconds = 0.0 }
    public private(set) var entries: [Key: Entry] = [:]
    /// Forward multiply-adds seen: every tap, and only taps inside the input.
    public private(set) var nominalMACs = 0, validMACs = 0
    /// Whether calls are timed now (the timer stays installed across warm-up steps).
    public var recording = true

    public init() {}

    public func conv(_ direction: ConvDirection, _ g: ConvGeometry, _ path: ConvPath, run: () -> Void) {
        guard recording else { run(); return }
        let start = DispatchTime.now().uptimeNanoseconds
        run()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        entries[Key(direction: direction, geometry: g, path: path), default: Entry()].calls += 1
        entries[Key(direction: direction, geometry: g, path: path), default: Entry()].seconds += seconds
        if direction == .forward { let m = g.macs; nominalMACs += m.nominal; validMACs += m.valid }
    }

    public func reset() { entries = [:]; nominalMACs = 0; validMACs = 0 }

    /// Runs `body` with this timer installed.
    public func observing<R>(_ body: () throws -> R) rethrows -> R {
        let saved = Engine.convObserver
        Engine.convObserver = self
        defer { Engine.convObserver = saved }
        return try body()
    }
}

/// Time and GFLOP/s per conv shape, direction and path over `steps` steps, slowest first,
/// beside a bare OpenBLAS sgemm of the same product (`bare / conv` of 1 or more: the conv runs
/// at least at the speed of the plain GEMM, im2col and all).
public func printConvLayers(_ timer: ConvTimer, log: (String) -> Void, steps: Int, stepSeconds: Double) {
    log("  per conv shape, direction and path, per training step (GEMMs: \(Engine.gemmDescription)):\n")
    func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
    log("    " + column("conv", 46) + column("path", 18) + "      ms   GFLOP/s  bare GF/s bare / conv\n")
    var total = 0.0, bareTotal = 0.0
    var bareCache: [GEMMShape: Double] = [:]
    for (key, e) in timer.entries.sorted(by: { $0.value.seconds > $1.value.seconds }) {
        let shape = GEMMShape(key.geometry, key.direction)
        let bare = bareCache[shape] ?? timeBareGEMM(shape)
        bareCache[shape] = bare
        let perStep = e.seconds / Double(steps), barePerStep = bare * Double(e.calls) / Double(steps)
        total += perStep; bareTotal += barePerStep
        log("    " + column("\(key.direction.rawValue) \(key.geometry)", 46) + column(key.path.rawValue, 18)
            + String(format: "%8.1f %9.1f %10.1f %11.2f\n", perStep * 1e3, shape.flops * Double(e.calls) / e.seconds / 1e9,
                     shape.flops / bare / 1e9, barePerStep / perStep))
    }
    log(String(format: "  training step %.1f ms: convs %.1f ms (a bare OpenBLAS sgemm of the same products %.1f ms), everything else %.1f ms\n",
               stepSeconds * 1e3, total * 1e3, bareTotal * 1e3, (stepSeconds - total) * 1e3))
}
