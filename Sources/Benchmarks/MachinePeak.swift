import Dispatch
import Tensor

/// What the machine can do right now, measured beside a benchmark. On a virtual machine the
/// cores' clock follows the host's load, and a training step's time moves with it: a fraction
/// of peak means something only against a peak measured in the same run.
public struct MachinePeak: Sendable, Codable {
    /// fp32 GFLOP/s of register-only multiply-adds on every engine thread (`FMALoop`).
    public var fmaGFLOPs: Double
    /// GFLOP/s of a bare OpenBLAS sgemm of 1024 x 1024 x 1024, split across the engine's threads
    /// as `sgemm` splits a large product.
    public var sgemmGFLOPs: Double
    /// On the calling thread alone: the FMA-only loop, and our two conv microkernels on operands
    /// that stay in L1 (`PackedGEMM.kernel`, 12 x 32 over a 256-deep packed slice;
    /// `PackedGEMM.indirectWide`, 8 x 32 over one 192-value run read through row pointers).
    /// Kernels at the loop's speed mean a step loses its distance to the peak elsewhere.
    public var oneThreadFMAGFLOPs: Double, tileKernelGFLOPs: Double, indirectKernelGFLOPs: Double

    /// Measures all: the best of `repeats` FMA runs of about `seconds` each (the kernels'
    /// likewise), and the median of 9 sgemms (a few ms each, and the more variable figure:
    /// memory traffic from the host's other guests slows it, never the FMA loop).
    public static func measure(seconds: Double = 0.2, repeats: Int = 3) -> MachinePeak {
        func best(_ run: () -> Double) -> Double { (0..<repeats).map { _ in run() }.max() ?? 0 }
        let fma = best { measureFMA(seconds: seconds) }
        let shape = GEMMShape(transA: false, transB: false, m: 1024, n: 1024, k: 1024, lda: 1024, ldb: 1024, ldc: 1024)
        let sgemm = shape.flops / timeBareGEMM(shape, repeats: 9) / 1e9
        return MachinePeak(fmaGFLOPs: fma, sgemmGFLOPs: sgemm,
                           oneThreadFMAGFLOPs: best { measureFMA(seconds: seconds / 2, threads: 1) },
                           tileKernelGFLOPs: best { KernelProbe().gflops(seconds: seconds / 2, indirect: false) },
                           indirectKernelGFLOPs: best { KernelProbe().gflops(seconds: seconds / 2, indirect: true) })
    }

    /// The larger of two measurements of each figure (e.g. before and after a benchmark): the
    /// stricter denominator for a fraction of peak.
    public func max(_ other: MachinePeak) -> MachinePeak {
        MachinePeak(fmaGFLOPs: Swift.max(fmaGFLOPs, other.fmaGFLOPs), sgemmGFLOPs: Swift.max(sgemmGFLOPs, other.sgemmGFLOPs),
                    oneThreadFMAGFLOPs: Swift.max(oneThreadFMAGFLOPs, other.oneThreadFMAGFLOPs),
                    tileKernelGFLOPs: Swift.max(tileKernelGFLOPs, other.tileKernelGFLOPs),
                    indirectKernelGFLOPs: Swift.max(indirectKernelGFLOPs, other.indirectKernelGFLOPs))
    }

    /// One line for a benchmark's log.
    public var summary: String {
        let peak = String(format: "FMA-only loop %.0f GFLOP/s (one thread %.0f), OpenBLAS sgemm 1024^3 %.0f", fmaGFLOPs, oneThreadFMAGFLOPs, sgemmGFLOPs)
        // our microkernels run only with AVX-512 kernels on
        guard Engine.options.avx512 else { return peak }
        return peak + String(format: "; one thread, L1-resident operands: our 12x32 kernel %.0f, implicit 8x32 %.0f", tileKernelGFLOPs, indirectKernelGFLOPs)
    }

    /// One run of the FMA-only loop on `threads` engine threads at once, about `seconds` long.
    static func measureFMA(seconds: Double, threads: Int = Engine.threads) -> Double {
        let loop = FMALoop.forThisCPU
        // 64 floats (operands and result) per thread, so no two threads share a cache line.
        let lines = UnsafeMutablePointer<Float>.allocate(capacity: threads * 64)
        defer { lines.deallocate() }
        lines.update(repeating: 1, count: threads * 64)
        let calibration = 1 << 20
        let start = DispatchTime.now().uptimeNanoseconds
        loop.run(calibration, lines)
        let perIteration = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(calibration)
        let iterations = Swift.max(calibration, Int(seconds / Swift.max(perIteration, 1e-12)))
        let regionStart = DispatchTime.now().uptimeNanoseconds
        WorkerPool.shared.run(threads) { t in loop.run(iterations, lines + t * 64) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - regionStart) / 1e9
        return Double(threads) * Double(iterations) * Double(loop.flopsPerIteration) / elapsed / 1e9
    }
}

/// Register-only multiply-adds at the CPU's full vector width. The accumulators must fit the
/// register file: 24 accumulators of 16 floats fill 24 of AVX-512's 32 zmm registers, but on an
/// AVX2 CPU each is two ymm registers, 48 for 16, and the loop would measure its spills instead
/// of the FMA units. So AVX2 runs 12 accumulators of 8 floats (still more independent chains
/// than two FMA pipes of latency 4 need).
enum FMALoop {
    case wide16, wide8

    static var forThisCPU: FMALoop { Engine.options.avx512 ? .wide16 : .wide8 }

    var flopsPerIteration: Int {
        switch self {
        case .wide16: return 24 * 16 * 2
        case .wide8: return 12 * 8 * 2
        }
    }

    /// `iterations` rounds of independent FMAs, the operands read from and the sum written to
    /// `line` (64 floats) so the loop is neither folded away nor run at a narrower width.
    func run(_ iterations: Int, _ line: UnsafeMutablePointer<Float>) {
        switch self {
        case .wide16: FMALoop.loop16(iterations, line)
        case .wide8: FMALoop.loop8(iterations, line)
        }
    }

    @inline(never)
    static func loop16(_ iterations: Int, _ line: UnsafeMutablePointer<Float>) {
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

    @inline(never)
    static func loop8(_ iterations: Int, _ line: UnsafeMutablePointer<Float>) {
        typealias Vector = SIMD8<Float>
        let raw = UnsafeMutableRawPointer(line)
        let x = raw.loadUnaligned(as: Vector.self), y = raw.loadUnaligned(fromByteOffset: 32, as: Vector.self) * 0.5
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector(), c4 = Vector(), c5 = Vector()
        var c6 = Vector(), c7 = Vector(), c8 = Vector(), c9 = Vector(), ca = Vector(), cb = Vector()
        for _ in 0..<iterations {
            c0.addProduct(x, y); c1.addProduct(x, y); c2.addProduct(x, y); c3.addProduct(x, y)
            c4.addProduct(x, y); c5.addProduct(x, y); c6.addProduct(x, y); c7.addProduct(x, y)
            c8.addProduct(x, y); c9.addProduct(x, y); ca.addProduct(x, y); cb.addProduct(x, y)
        }
        let c = (c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7) + (c8 + c9) + (ca + cb)
        raw.storeBytes(of: c, toByteOffset: 128, as: Vector.self)
    }
}

/// Operands for timing the conv microkernels alone, small enough to stay in L1: a packed 12 x
/// 256 slice of A and 256 x 32 panel of B for `PackedGEMM.kernel`, and 8 rows of a 192-value run
/// for `PackedGEMM.indirectWide`. A is all 1, B all 0.5, so each call adds depth / 2 to every
/// element of C, exactly.
struct KernelProbe {
    static let depth = PackedGEMM.kc, run = 192
    let a = Storage(uninitialized: PackedGEMM.mr * depth), b = Storage(uninitialized: depth * PackedGEMM.nr)
    let c = Storage(zeros: PackedGEMM.mr * PackedGEMM.nr), zeros = Storage(zeros: run)
    let rows: [UnsafePointer<Float>]

    init() {
        a.pointer.update(repeating: 1, count: a.count)
        b.pointer.update(repeating: 0.5, count: b.count)
        let base = a.pointer
        rows = (0..<PackedGEMM.indirectRows).map { UnsafePointer(base + $0 * Self.run) }
    }

    /// One call: C (12 x 32, or its first 8 rows) += A B.
    func call(indirect: Bool) {
        if indirect {
            rows.withUnsafeBufferPointer { r in
                PackedGEMM.indirectWide(1, Self.run, r.baseAddress!, UnsafePointer(zeros.pointer), UnsafePointer(b.pointer),
                                        c.pointer, PackedGEMM.nr, true)
            }
        } else {
            PackedGEMM.kernel(Self.depth, UnsafePointer(a.pointer), 1, PackedGEMM.mr, UnsafePointer(b.pointer), c.pointer, PackedGEMM.nr, add: true)
        }
    }

    /// GFLOP/s of back-to-back calls for about `seconds`.
    func gflops(seconds: Double, indirect: Bool) -> Double {
        let flops = 2.0 * Double(PackedGEMM.nr) * (indirect ? Double(PackedGEMM.indirectRows * Self.run) : Double(PackedGEMM.mr * Self.depth))
        var calls = 1000
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<calls { call(indirect: indirect) }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if elapsed >= seconds / 4 || calls >= 1 << 30 {
                c.pointer.update(repeating: 0, count: c.count)
                return flops * Double(calls) / Swift.max(elapsed, 1e-9) / 1e9
            }
            calls *= 4
        }
    }
}
