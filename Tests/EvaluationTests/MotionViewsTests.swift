import DataHDF5
import Evaluation
import Foundation
import Tensor
import Training
import TrainingTestSupport
import XCTest

/// The motion test (`maclr eval --views`): what each view does to a clip's frames, and that it
/// tells an encoder of motion from one of appearance.
final class MotionViewsTests: XCTestCase {
    func testEachViewReordersTheFramesAsNamed() {
        XCTAssertEqual(TemporalView.normal.frameOrder(5, seed: 1), [0, 1, 2, 3, 4])
        XCTAssertEqual(TemporalView.reversed.frameOrder(5, seed: 1), [4, 3, 2, 1, 0])
        XCTAssertEqual(TemporalView.frozen.frameOrder(5, seed: 1), [2, 2, 2, 2, 2])
        for seed in UInt64(0)..<50 {
            let order = TemporalView.shuffled.frameOrder(4, seed: seed)
            XCTAssertEqual(order.sorted(), [0, 1, 2, 3], "a permutation")
            XCTAssertNotEqual(order, [0, 1, 2, 3], "never the normal order (seed \(seed))")
            XCTAssertEqual(order, TemporalView.shuffled.frameOrder(4, seed: seed), "fixed by the seed")
        }
        // (V, T, H, W, C) = (2, 3, 1, 1, 2): frame f of clip v holds [10 v + f, -(10 v + f)]
        var values: [Float] = []
        for v in 0..<2 { for f in 0..<3 { let x = Float(10 * v + f); values += [x, -x] } }
        let clips = Tensor(shape: [2, 3, 1, 1, 2], data: values)
        XCTAssertEqual(TemporalView.reversed.apply(clips, seed: 0).toArray(), [2, -2, 1, -1, 0, 0, 12, -12, 11, -11, 10, -10])
        XCTAssertEqual(TemporalView.frozen.apply(clips, seed: 0).toArray(), [1, -1, 1, -1, 1, -1, 11, -11, 11, -11, 11, -11])
    }

    /// On the tiny dataset (a square moving right or left, the same square in both classes): an
    /// encoder of the square's displacement over the clip reads the class from the normal clips,
    /// reads the opposite class from reversed ones and nothing from frozen ones; an encoder of the
    /// clip's mean colour is the same on every reordering of the frames.
    func testTheViewsSeparateAnEncoderOfMotionFromOneOfAppearance() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("views-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeTinyDataset(dir.appendingPathComponent("ds"), videos: 24)
        var recipe = try tinyRecipe(dataset: dir.appendingPathComponent("ds"), output: dir.appendingPathComponent("run"))
        try recipe.set("data.clip_frames", 8)
        let ds = try ShardDataset(folder: dir.appendingPathComponent("ds"))

        /// The bright square's mean column in each frame of (V, T, H, W, 3) clips.
        func columns(_ x: Tensor) -> [[Float]] {
            let (v, t, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            return (0..<v).map { c in (0..<t).map { f in
                var sum: Float = 0, n: Float = 0
                for y in 0..<h { for col in 0..<w where x.data[(((c * t + f) * h + y) * w + col) * 3] > 1 { sum += Float(col); n += 1 } }
                return n > 0 ? sum / n : 0
            } }
        }
        let displacement: (Tensor) -> Tensor = { x in
            let d = columns(x).map { $0.last! - $0.first! }
            return Tensor(shape: [d.count, 2], data: d.flatMap { [$0, $0 * $0 * ($0 < 0 ? -1 : 1)] })
        }
        let motion = try Evaluation.runViews(encoder: displacement, dataset: ds, recipe: recipe, log: { _ in })
        XCTAssertEqual(motion.views["normal"]!.top1, 1)
        XCTAssertEqual(motion.views["reversed"]!.top1, 0, "every direction read as its opposite")
        XCTAssertEqual(motion.drop(.reversed, \.top1), -1)
        XCTAssertLessThanOrEqual(motion.views["frozen"]!.top1, 0.5, "no displacement: one class for every video")

        // each frame's mean colour, then the largest and smallest over frames: blind to their order, exactly
        let meanColour: (Tensor) -> Tensor = { x in
            let perFrame = noGrad { x.mean(axes: [2, 3]) }.toArray()          // (V, T, 3)
            let (v, t) = (x.shape[0], x.shape[1])
            var out: [Float] = []
            for c in 0..<v {
                for ch in 0..<3 {
                    let values = (0..<t).map { perFrame[(c * t + $0) * 3 + ch] }
                    out += [values.max()!, values.min()!]
                }
            }
            return Tensor(shape: [v, 6], data: out)
        }
        let appearance = try Evaluation.runViews(encoder: meanColour, dataset: ds, recipe: recipe, log: { _ in })
        for view in [TemporalView.shuffled, .reversed] {
            XCTAssertEqual(appearance.drop(view, \.top1)!, 0, accuracy: 1e-9, "\(view)")
            XCTAssertEqual(appearance.drop(view, \.recallAt1)!, 0, accuracy: 1e-9, "\(view)")
        }
        XCTAssertTrue(appearance.table.contains("| reversed |"), appearance.table)
    }
}
