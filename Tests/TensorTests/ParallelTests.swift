import Foundation
import Synchronization
@testable import Tensor
import XCTest

/// The worker pool behind `parallelFor`: every chunk runs exactly once, with the right range,
/// also when regions nest or several threads start them at once.
final class ParallelTests: XCTestCase {
    /// Per-chunk counters that chunks on different threads can bump.
    final class Counters: @unchecked Sendable {
        let values: UnsafeMutablePointer<Int>
        let count: Int
        init(_ count: Int) { self.count = count; values = .allocate(capacity: count); values.update(repeating: 0, count: count) }
        deinit { values.deallocate() }
        var array: [Int] { Array(UnsafeBufferPointer(start: values, count: count)) }
    }

    override func setUp() { Engine.options.threads = 2 }

    func testEveryItemRunsOnceOverManyRegions() {
        for count in [1, 2, 3, 7, 64, 1001] {
            let hits = Counters(count)
            for _ in 0..<500 {
                parallelFor(count, minPerThread: 1) { s, e in for i in s..<e { hits.values[i] += 1 } }
            }
            XCTAssertEqual(hits.array, [Int](repeating: 500, count: count), "count \(count)")
        }
    }

    /// `parallelClaims` hands out every grain exactly once, with fixed boundaries, and a thread
    /// that stalls on its first grain leaves the rest to the others.
    func testClaimsCoverFixedGrainsOnceAndRouteAroundAStall() {
        for (count, grain) in [(1, 1), (10, 3), (1001, 37), (64, 64), (5, 100)] {
            let hits = Counters(count), starts = Counters(count)
            for _ in 0..<200 {
                parallelClaims(count, grain: grain) { claims in
                    for range in claims {
                        starts.values[range.lowerBound] += 1
                        XCTAssertEqual(range.lowerBound % grain, 0)
                        XCTAssertEqual(range.count, min(grain, count - range.lowerBound))
                        for i in range { hits.values[i] += 1 }
                    }
                }
            }
            XCTAssertEqual(hits.array, [Int](repeating: 200, count: count), "count \(count) grain \(grain)")
            XCTAssertEqual(starts.array.filter { $0 > 0 }.count, (count + grain - 1) / grain)
        }
        let taken = Counters(2)
        let caller = Thread.current
        parallelClaims(40, grain: 1) { claims in
            var mine = 0
            for _ in claims {
                mine += 1
                usleep(Thread.current == caller && mine == 1 ? 300_000 : 2_000)
            }
            taken.values[Thread.current == caller ? 0 : 1] = mine
        }
        XCTAssertEqual(taken.array.reduce(0, +), 40)
        XCTAssertLessThan(taken.values[0], 20, "the stalled caller kept \(taken.values[0]) of 40 grains")
    }

    func testNestedRegionsRunInline() {
        let hits = Counters(16 * 16)
        parallelFor(16, minPerThread: 1) { s, e in
            for i in s..<e {
                parallelFor(16, minPerThread: 1) { s2, e2 in for j in s2..<e2 { hits.values[i * 16 + j] += 1 } }
            }
        }
        XCTAssertEqual(hits.array, [Int](repeating: 1, count: 256))
    }

    func testRegionsFromSeveralThreadsAtOnce() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                parallelFor(100, minPerThread: 1) { s, e in total.add(e - s, ordering: .relaxed) }
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 200 * 100)
    }

    /// After the workers have parked (idle longer than their spin), a region still runs all chunks.
    func testRegionAfterWorkersPark() {
        parallelFor(2, minPerThread: 1) { _, _ in }
        usleep(20_000)
        let hits = Counters(2)
        parallelFor(2, minPerThread: 1) { s, e in for i in s..<e { hits.values[i] += 1 } }
        XCTAssertEqual(hits.array, [1, 1])
    }
}
