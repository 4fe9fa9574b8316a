@testable import Benchmarks
import Tensor
import XCTest

final class MachinePeakTests: XCTestCase {
    /// Both widths of the peak probe's loop do the multiply-adds they count: every accumulator
    /// adds x*y per iteration, so n iterations sum to accumulators * n * x * y in every lane
    /// (exact in floats at these sizes). The 8-wide loop is what an AVX2 CPU runs.
    func testFMALoopsDoTheMultiplyAddsTheyCount() {
        for (loop, lanes, accumulators) in [(FMALoop.wide16, 16, 24), (.wide8, 8, 12)] {
            let line = UnsafeMutablePointer<Float>.allocate(capacity: 64)
            defer { line.deallocate() }
            line.update(repeating: 0, count: 64)
            for i in 0..<lanes { line[i] = 2; line[lanes + i] = 1.5 }
            loop.run(1000, line)
            // y is read as 1.5 and halved in the loop
            let expected = Float(accumulators) * 1000 * 2 * 0.75
            XCTAssertEqual(Array(UnsafeBufferPointer(start: line + 32, count: lanes)), [Float](repeating: expected, count: lanes), "\(loop)")
            XCTAssertEqual(loop.flopsPerIteration, accumulators * lanes * 2, "\(loop)")
        }
        XCTAssertEqual(FMALoop.forThisCPU, Engine.cpuHasAVX512 ? .wide16 : .wide8)
        Engine.with(.avx2(threads: 1)) { XCTAssertEqual(FMALoop.forThisCPU, .wide8) }
    }

    /// The kernel probe times the multiply-adds it counts: one call of the 12x32 kernel adds
    /// 256 x 1 x 0.5 to each of its 384 elements, one of the 8x32 implicit kernel 192 x 0.5 to
    /// each of its 256 (the 12x32 tile's last 4 rows untouched).
    func testKernelProbeDoesTheMultiplyAddsItCounts() {
        let tile = KernelProbe()
        tile.call(indirect: false)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: tile.c.pointer, count: 12 * 32)), [Float](repeating: 128, count: 12 * 32))
        let implicit = KernelProbe()
        implicit.call(indirect: true)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: implicit.c.pointer, count: 12 * 32)),
                       [Float](repeating: 96, count: 8 * 32) + [Float](repeating: 0, count: 4 * 32))
    }

    /// The conv timer sees every direction of a conv once per call, under the path the routing
    /// picks, and counts the forward's multiply-adds.
    func testConvTimerSeesEveryKernel() {
        var rng = RandomGenerator(seed: 0)
        let x = Tensor.randn([2, 4, 8, 8, 3], rng: &rng, requiresGrad: true), w = Tensor.randn([5, 3, 3, 3, 3], rng: &rng, requiresGrad: true)
        let timer = ConvTimer()
        timer.observing { conv3d(x, w, stride: [1, 1, 1], padding: [1, 1, 1]).sum().backward() }
        let g = ConvGeometry(input: x.shape, weight: w.shape, stride: [1, 1, 1], padding: [1, 1, 1])
        XCTAssertEqual(Set(timer.entries.keys.map(\.direction)), Set(ConvDirection.allCases))
        for (key, entry) in timer.entries {
            XCTAssertEqual(entry.calls, 1)
            XCTAssertEqual(key.path, convPath(g, key.direction))
        }
        XCTAssertEqual(timer.nominalMACs, g.macs.nominal)
        XCTAssertNil(Engine.convObserver)
    }
}
