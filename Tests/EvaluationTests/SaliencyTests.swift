import Evaluation
import Training
import XCTest

/// The saliency share `maclr saliency` prints, by hand.
final class SaliencyShareTests: XCTestCase {
    func testShareOnMovingPixelsAndTheirArea() {
        let boundaries: [Float] = [0, 0, 0, 4, 0, 0, 2, 2]      // mean 1: pixels 3, 6, 7 move
        let even = SaliencyPictures.shareOnMotion(saliency: [Float](repeating: 1, count: 8), boundaries: boundaries)
        XCTAssertEqual(even.area, 3.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(even.mass, even.area, accuracy: 1e-12, "a map spread evenly scores the moving pixels' area")
        let focused = SaliencyPictures.shareOnMotion(saliency: [1, 0, 0, 3, 0, 0, 2, 2], boundaries: boundaries)
        XCTAssertEqual(focused.mass, 7.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(SaliencyPictures.shareOnMotion(saliency: [Float](repeating: 0, count: 8), boundaries: boundaries).mass, 0)
    }
}
