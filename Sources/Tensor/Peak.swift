import Dispatch

/// What the machine can do right now, measured beside a benchmark. On this (virtual) machine the
/// cores' clock follows the host's load: an FMA-only loop measured 540 GFLOP/s on two cores when
/// the performance issue was written and 460-470 on other days, and a training step's time moves
/// with it. A fraction of peak means something only against a peak measured in the same run.
public struct MachinePeak: Sendable, Codable {
    /// fp32 GFLOP/s of register-only multiply-adds on every engine thread (`fmaLoop`).
    public var fmaGFLOPs: Double
    /// GFLOP/s of a bare OpenBLAS sgemm of 1024 x 1024 x 1024, split across the engine's threads
    /// as `sgemm` splits a large product.
    public var sgemmGFLOPs: Double

    /// Measures both: the best of `repeats` FMA runs of about `seconds` each, and the median
    /// of 9 sgemms (a few ms each, and the more variable figure: memory traffic from the host's
    /// other guests slows it, never the FMA loop).
    public static func measure(seconds: Double = 0.2, repeats: Int = 3) -> MachinePeak {
        let fma = (0..<repeats).map { _ in measureFMA(seconds: seconds) }.max() ?? 0
        let shape = GEMMShape(transA: false, transB: false, m: 1024, n: 1024, k: 1024, lda: 1024, ldb: 1024, ldc: 1024)
        let sgemm = shape.flops / timeBareGEMM(shape, backend: .openblas, repeats: 9) / 1e9
        return MachinePeak(fmaGFLOPs: fma, sgemmGFLOPs: sgemm)
    }

    /// The larger of two measurements of each figure (e.g. before and after a benchmark): the
    /// stricter denominator for a fraction of peak.
    public func max(_ other: MachinePeak) -> MachinePeak {
        MachinePeak(fmaGFLOPs: Swift.max(fmaGFLOPs, other.fmaGFLOPs), sgemmGFLOPs: Swift.max(sgemmGFLOPs, other.sgemmGFLOPs))
    }

    /// One run of `fmaLoop` on every engine thread at once, about `seconds` long.
    static func measureFMA(seconds: Double) -> Double {
        let threads = Engine.threads
        // 64 floats (operands and result) per thread, so no two threads share a cache line.
        let lines = Storage(zeros: threads * 64)
        lines.pointer.update(repeating: 1, count: threads * 64)
        let calibration = 1 << 20
        let start = DispatchTime.now().uptimeNanoseconds
        fmaLoop(calibration, lines.pointer)
        let perIteration = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(calibration)
        let iterations = Swift.max(calibration, Int(seconds / Swift.max(perIteration, 1e-12)))
        let regionStart = DispatchTime.now().uptimeNanoseconds
        WorkerPool.shared.run(threads) { t in fmaLoop(iterations, lines.pointer + t * 64) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - regionStart) / 1e9
        return Double(threads) * Double(iterations) * Double(fmaLoopFLOPsPerIteration) / elapsed / 1e9
    }

    /// 24 vector multiply-adds of 16 lanes per iteration.
    static let fmaLoopFLOPsPerIteration = 24 * 16 * 2

    /// `iterations` x 24 independent FMAs on registers (24 accumulators: more than the two FMA
    /// pipes' latency x width needs), the operands read from and the sum written to `line`
    /// (64 floats) so the loop is neither folded away nor run at a narrower vector width.
    @inline(never)
    static func fmaLoop(_ iterations: Int, _ line: UnsafeMutablePointer<Float>) {
        typealias Vector = SIMD16<Float>
        let raw = UnsafeMutableRawPointer(line)
        let x = raw.loadUnaligned(as: Vector.self), y = raw.loadUnaligned(fromByteOffset: 64, as: Vector.self) * 0.5
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector(), c4 = Vector(), c5 = Vector()
        var c6 = Vector(), c7 = Vector(), c8 = Vector(), c9 = Vector(), ca = Vector(), cb = Vector()
        var d0 = Vector(), d1 = Vector(), d2 = Vector(), d3 = Vector(), d4 = Vector(), d5 = Vector()
        var d6 = Vector(), d7 = Vector(), d8 = Vector(), d9 = Vector(), da = Vector(), db = Vector()
        for _ in 0..<iterations {
            c0.addProduct(x, y); c1.addProduct(x, y); c2.addProduct(x, y); c3.addProduct(x, y)
            c4.addProduct(x, y); c5.addProduct(x, y); c6.addProduct(x, y); c7.addProduct(x, y)
            c8.addProduct(x, y); c9.addProduct(x, y); ca.addProduct(x, y); cb.addProduct(x, y)
            d0.addProduct(x, y); d1.addProduct(x, y); d2.addProduct(x, y); d3.addProduct(x, y)
            d4.addProduct(x, y); d5.addProduct(x, y); d6.addProduct(x, y); d7.addProduct(x, y)
            d8.addProduct(x, y); d9.addProduct(x, y); da.addProduct(x, y); db.addProduct(x, y)
        }
        let c = (c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7) + (c8 + c9) + (ca + cb)
        let d = (d0 + d1) + (d2 + d3) + (d4 + d5) + (d6 + d7) + (d8 + d9) + (da + db)
        raw.storeBytes(of: c + d, toByteOffset: 128, as: Vector.self)
    }
}
