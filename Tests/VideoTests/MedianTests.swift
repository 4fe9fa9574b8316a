@testable import Video
import Tensor
import XCTest

/// The 5 x 5 median's selection network against the reference that sorts every window.
final class MedianTests: XCTestCase {
    func testTheNetworkSelectsTheMedianOfEveryWindow() {
        var rng = RandomGenerator(seed: 5)
        for (w, h) in [(1, 1), (3, 2), (16, 5), (17, 9), (37, 4), (64, 64)] {
            for ties in [false, true] {
                // with ties: few distinct values, as quantised flow has
                let a = (0..<(w * h)).map { _ in ties ? Float(rng.next() % 4) : Float(rng.uniform()) * 2 - 1 }
                XCTAssertEqual(medianOf5x5(a, w, h), medianBySorting(a, w, h, 5), "\(w)x\(h), ties \(ties)")
            }
        }
        XCTAssertEqual(median([1, 2, 3], 3, 1, 3), medianBySorting([1, 2, 3], 3, 1, 3), "other sizes sort")
    }

    func testTheNetworkIsPrunedToTheMediansWire() {
        // Batcher's sort of 32 has 191 comparators; the median needs fewer
        XCTAssertLessThan(medianOf25Network.count, 191)
        XCTAssertTrue(medianOf25Network.allSatisfy { $0.0 < $0.1 && $0.1 < 32 })
    }
}
