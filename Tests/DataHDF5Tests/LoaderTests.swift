@testable import DataHDF5
import Foundation
import Tensor
import Video
import XCTest

final class LoaderTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A dataset of `videos` videos, 32x32, 10 fps. RGB: R = frame index, G = x * 8, B = label.
    /// Flow: u = x-dependent ramp (or `flowU(frame, x, y)` pixels), v = 0.
    func makeDataset(videos: Int = 6, frames: Int = 60, flowU: (Int, Int, Int) -> Float = { _, x, _ in Float(x) / 4 }) throws -> ShardDataset {
        let (h, w) = (32, 32)
        let writer = try ShardWriter(path: dir.appendingPathComponent("shard-00000.h5").path,
                                     attributes: ShardAttributes(height: h, width: w, fps: 10, flowAlgorithm: "tvl1", flowBound: 20))
        var names: [String] = []
        for v in 0..<videos {
            var rgb = [UInt8](repeating: 0, count: frames * h * w * 3), flow = [UInt8](repeating: 0, count: frames * h * w * 2)
            for f in 0..<frames { for y in 0..<h { for x in 0..<w {
                let i = (f * h + y) * w + x
                rgb[3 * i] = UInt8(f); rgb[3 * i + 1] = UInt8(x * 8); rgb[3 * i + 2] = UInt8(v % 2 * 200)
                flow[2 * i] = Motion.quantize(flowU(f, x, y), bound: 20); flow[2 * i + 1] = Motion.quantize(0, bound: 20)
            }}}
            names.append("video\(v)")
            try writer.append(PreparedVideo(name: names[v], source: "synthetic", label: v % 2, frames: frames, height: h, width: w, rgb: rgb, flow: flow))
        }
        try writer.finish()
        var m = DatasetManifest(preparation: .init(size: "32x32", fps: 10, flowAlgorithm: "tvl1", flowBound: 20, videosPerShard: videos))
        m.shards = [try .init(measuring: "shard-00000.h5", in: dir, videos: videos, frames: videos * frames)]
        m.classes = ["a", "b"]; m.splits = ["train": names]; m.complete = true
        try m.save(to: dir)
        return try ShardDataset(folder: dir)
    }

    /// CVRL's augmentation, as the recipe schema's defaults set it.
    static let augmentation = Augmentation(cropScale: 0.3...1.0, jitterProbability: 0.8, grayscaleProbability: 0.2, blurProbability: 0.5,
                                           blurSigma: 0.1...2.0, motionTemporalSampling: false, motionSpatialCropping: false)

    func sampler(_ ds: ShardDataset, _ aug: Augmentation = LoaderTests.augmentation, seed: UInt64 = 1) -> ClipSampler {
        let s = ClipSampling(frames: 4, stride: 2, height: 16, width: 16, positiveGap: 0.5...10, motion: .flow)
        return ClipSampler(dataset: ds, indices: try! ds.indices(split: "train"), sampling: s, augmentation: aug, seed: seed,
                           batchSize: 2, withMotion: true)
    }

    /// De-normalise the red channel back to 0...255 (the frame index in these videos).
    func red(_ t: Tensor, _ offset: Int) -> Float { (t.data[offset] * 0.22803 + 0.43216) * 255 }

    func testPositivesComeFromTheSameVideoHalfASecondToTenSecondsApart() throws {
        let ds = try makeDataset()
        let s = sampler(ds, .none)
        for b in 0..<3 {
            let batch = try s.batch(at: LoaderPosition(epoch: 0, batch: b))
            for i in 0..<2 {
                let clip = 4 * 16 * 16 * 3
                let startA = red(batch.rgbA, i * clip).rounded(), startB = red(batch.rgbB, i * clip).rounded()
                let gap = abs(startA - startB)
                XCTAssertGreaterThanOrEqual(gap, 5, "0.5 s at 10 fps")
                XCTAssertLessThanOrEqual(gap, 100)
                // frames inside a clip step by the stride
                XCTAssertEqual(red(batch.rgbA, i * clip + 16 * 16 * 3), startA + 2, accuracy: 0.6)
                XCTAssertEqual(batch.labels[i], ds.entries[batch.videos[i]].label)
            }
        }
    }

    /// Each step of a clip on its own: a 3-frame video read as a 4-frame clip repeats its last
    /// frame; evaluation crops the central square unflipped; the RGB input is the frame
    /// normalised; the flow input is rescaled by the resize and divided by the bound.
    func testTheClipStepsOneByOne() throws {
        let ds = try makeDataset(videos: 2, frames: 3, flowU: { _, _, _ in 5 })
        let s = sampler(ds, .none)
        let e = ds.entries[0]
        let raw = try s.readClip(e, start: 0, withFlow: true)
        XCTAssertEqual(raw.stride, 1, "a video too short for stride 2 is read at stride 1")
        XCTAssertEqual((0..<4).map { raw.rgb[$0 * 32 * 32 * 3] }, [0, 1, 2, 2])
        XCTAssertEqual(raw.flow.count, 4 * 32 * 32 * 2)
        var rng = RandomGenerator(seed: 0)
        let (box, flip) = s.chooseCrop(raw, motionFocused: false, rng: &rng)
        XCTAssertEqual([box.x, box.y, box.width, box.height], [0, 0, 32, 32])
        XCTAssertFalse(flip)
        let rgb = Tensor(uninitialized: [4, 16, 16, 3]), motion = Tensor(uninitialized: [4, 16, 16, 2])
        s.writeRGB(raw, box: box, flip: flip, rng: &rng, into: rgb.data)
        for f in 0..<4 { XCTAssertEqual(red(rgb, f * 16 * 16 * 3), Float(min(f, 2)), accuracy: 0.01, "frame \(f)") }
        try s.writeMotion(e, raw, box: box, flip: flip, into: motion.data)
        XCTAssertEqual(motion.data[0], 2.5 / 20, accuracy: 0.01)
        XCTAssertEqual(motion.data[1], 0, accuracy: 0.01)
    }

    func testFlipNegatesUAndResizeScalesFlowWithTheSameGeometryAsRGB() throws {
        let ds = try makeDataset(flowU: { _, _, _ in 5 })           // constant 5 px to the right
        var a = Augmentation.none; a.enabled = true
        a.cropScale = 1...1; a.cropRatio = 1...1; a.jitterProbability = 0; a.grayscaleProbability = 0; a.blurProbability = 0
        a.flipProbability = 1
        let flipped = try sampler(ds, a).batch(at: LoaderPosition())
        a.flipProbability = 0
        let straight = try sampler(ds, a).batch(at: LoaderPosition())
        // 32 -> 16 pixels halves the displacement; in units of the 20 px bound: 2.5 / 20
        XCTAssertEqual(straight.motionA!.data[0], 2.5 / 20, accuracy: 0.01)
        XCTAssertEqual(flipped.motionA!.data[0], -2.5 / 20, accuracy: 0.01)
        XCTAssertEqual(straight.motionA!.data[1], 0, accuracy: 0.01)
        // RGB mirrored too: green (x ramp) at the left edge of the flipped clip is the right edge's
        let green = { (t: Tensor, x: Int) in (t.data[x * 3 + 1] * 0.22145 + 0.394666) * 255 }
        XCTAssertGreaterThan(green(flipped.rgbA, 0), 200)
        XCTAssertLessThan(green(straight.rgbA, 0), 30)
        XCTAssertEqual(green(flipped.rgbA, 0), green(straight.rgbA, 15), accuracy: 1)

        // A ramp flow (u = x / 4) under random crops: u must follow the same crop as the green ramp.
        let ramp = try makeDataset(flowU: { _, x, _ in Float(x) / 4 })
        var b = Self.augmentation; b.jitterProbability = 0; b.grayscaleProbability = 0; b.blurProbability = 0
        let rampSampler = sampler(ramp, b, seed: 7)
        for k in 0..<6 {   // 12 clips: about half of them flipped
        let batch = try rampSampler.batch(at: LoaderPosition(epoch: k / 3, batch: k % 3))
        // At every pixel u = sign * (x / 4) * scale / 20 where x is the source column the RGB green
        // ramp shows there (x = green / 8): u / x is one constant per clip if both saw one geometry.
        let clip = 4 * 16 * 16
        for i in 0..<2 {
            var ratios: [Float] = []
            for p in stride(from: 0, to: 256, by: 7) {
                let x = green(batch.rgbA, i * clip + p) / 8
                guard x > 4 else { continue }
                ratios.append(batch.motionA!.data[(i * clip + p) * 2] / x)
            }
            XCTAssertGreaterThan(ratios.count, 10)
            let mean = ratios.reduce(0, +) / Float(ratios.count)
            XCTAssertGreaterThan(abs(mean), 1e-3)
            for r in ratios { XCTAssertEqual(r, mean, accuracy: abs(mean) * 0.08, "clip \(i): flow and RGB crops disagree") }
        }
        }
    }

    func testBatchesAreDeterministicAndTheStreamingLoaderResumes() throws {
        let ds = try makeDataset()
        let s = sampler(ds)
        let direct = try (0..<5).map { try s.batch(at: LoaderPosition(epoch: $0 / 3, batch: $0 % 3)).rgbA.toArray() }
        XCTAssertEqual(try s.batch(at: LoaderPosition(epoch: 0, batch: 1)).rgbA.toArray(), direct[1])
        let loader = StreamingLoader(sampler: s, workers: 2, depth: 3)
        let streamed = try (0..<5).map { _ in try loader.next().rgbA.toArray() }
        XCTAssertEqual(streamed, direct, "background threads deliver batches in order")
        XCTAssertEqual(loader.position, LoaderPosition(epoch: 1, batch: 2))
        let resumed = StreamingLoader(sampler: s, position: LoaderPosition(epoch: 1, batch: 0), workers: 2, depth: 2)
        XCTAssertEqual(try resumed.next().rgbA.toArray(), direct[3])
        XCTAssertNotEqual(direct[0], direct[3], "a new epoch reshuffles")
    }

    func testPositiveGapsSpreadOverWhatTheVideoAllows() throws {
        // 60 frames at 10 fps, clips span 7 frames: gaps of 0.5-10 s fit as 5...53 frames. A gap
        // drawn from 5...100 and then clamped to 53 would be 53 about half the time (mean ~41).
        let ds = try makeDataset(frames: 60)
        let s = sampler(ds, .none)
        var gaps: [Float] = []
        for b in 0..<24 {
            let batch = try s.batch(at: LoaderPosition(epoch: b / 3, batch: b % 3))
            for i in 0..<2 {
                let clip = 4 * 16 * 16 * 3
                gaps.append(abs(red(batch.rgbA, i * clip) - red(batch.rgbB, i * clip)).rounded())
            }
        }
        XCTAssert(gaps.allSatisfy { (5...53).contains($0) }, "\(gaps)")
        let longest = gaps.filter { $0 == 53 }.count
        XCTAssertLessThan(longest, 8, "\(longest) of \(gaps.count) pairs at the longest gap: \(gaps)")
        let mean = gaps.reduce(0, +) / Float(gaps.count)
        XCTAssertEqual(mean, 29, accuracy: 8, "uniform over 5...53 has mean 29: \(gaps)")
    }

    func testMotionFocusedSamplingPrefersMovingClips() throws {
        // Frames 0..29 still; frames 30..59 have a moving square (motion boundaries).
        let ds = try makeDataset(frames: 60) { f, x, y in f >= 30 && (8..<20).contains(x) && (8..<20).contains(y) ? 6 : 0 }
        // with random crops and on whole frames alike: which clips are drawn is not augmentation
        for cropped in [true, false] {
            var a = Augmentation.none; a.enabled = cropped
            a.jitterProbability = 0; a.grayscaleProbability = 0; a.blurProbability = 0
            a.motionTemporalSampling = true
            var s = sampler(ds, a); s.sampling.positiveGap = 0.5...0.6
            var moving = 0, total = 0
            for b in 0..<15 {
                let batch = try s.batch(at: LoaderPosition(epoch: b / 3, batch: b % 3))
                for i in 0..<2 {
                    for t in [batch.rgbA, batch.rgbB] { total += 1; if red(t, i * 4 * 16 * 16 * 3) >= 24 { moving += 1 } }
                }
            }
            // Uniform sampling would put about 40% of clip starts at frame >= 24 here.
            XCTAssertGreaterThan(Double(moving) / Double(total), 0.6, "cropped \(cropped): \(moving) of \(total) clips start in the moving part")
        }

        // Spatial cropping covers the moving square's box.
        let box = CropBox(x: 8, y: 8, width: 12, height: 12)
        var rng = RandomGenerator(seed: 3)
        for _ in 0..<20 {
            let c = Self.augmentation
            var aug = c; aug.motionSpatialCropping = true
            let crop = CropSampler.sample(width: 32, height: 32, aug, rng: &rng, cover: box, coverage: 0.8)
            XCTAssertGreaterThanOrEqual(crop.intersectionArea(box), 0.8 * 144 - 1e-6)
        }
    }

    func testMotionRepresentationsOnTheFly() throws {
        let ds = try makeDataset(flowU: { _, _, _ in 5 })       // constant 5 px: magnitude 5, no boundaries
        var a = Augmentation.none; a.enabled = true
        a.cropScale = 1...1; a.cropRatio = 1...1; a.flipProbability = 0
        a.jitterProbability = 0; a.grayscaleProbability = 0; a.blurProbability = 0
        func first(_ kind: MotionRepresentation) throws -> Tensor {
            var s = sampler(ds, a); s.sampling.motion = kind
            return try s.batch(at: LoaderPosition()).motionA!
        }
        let magnitude = try first(.magnitude)
        XCTAssertEqual(magnitude.shape, [2, 4, 16, 16, 1])
        XCTAssertEqual(magnitude.data[0], 2.5 / 20, accuracy: 0.01)     // halved by the 32 -> 16 resize
        let boundaries = try first(.motionBoundaries)
        XCTAssertEqual(boundaries.toArray().map(abs).max()!, 0, accuracy: 1e-4)
        let difference = try first(.frameDifference)
        XCTAssertEqual(difference.shape, [2, 4, 16, 16, 3])
        // red = frame index: the next frame is one level brighter; green (x ramp) does not change
        XCTAssertEqual(difference.data[0], 1.0 / 255, accuracy: 1e-4)
        XCTAssertEqual(difference.data[1], 0, accuracy: 1e-4)
    }

    func testMotionFocusedCroppingOnVideosShorterThanTheClipSpan() throws {
        // 4 frames at stride 2 span 7 frames; these videos have 6, so the clip shortens its stride.
        let ds = try makeDataset(frames: 6) { _, x, y in (8..<20).contains(x) && (8..<20).contains(y) ? 6 : 0 }
        var a = Self.augmentation; a.motionSpatialCropping = true
        a.jitterProbability = 0; a.grayscaleProbability = 0; a.blurProbability = 0
        var s = sampler(ds, a); s.sampling.positiveGap = 0...0.1
        let batch = try s.batch(at: LoaderPosition())
        XCTAssertEqual(batch.rgbA.shape, [2, 4, 16, 16, 3])
        XCTAssertTrue(batch.motionA!.toArray().contains { abs($0) > 0.01 }, "the crop covers the moving square")
    }
}

/// The loader's interleaved blur gives, channel by channel, the values of the single-plane
/// Gaussian blur it replaced, bit for bit.
final class BlurTests: XCTestCase {
    func testInterleavedBlurEqualsThePlaneBlur() {
        var rng = RandomGenerator(seed: 4)
        let (t, h, w) = (2, 9, 13)
        let values = (0..<(t * h * w * 3)).map { _ in rng.uniform() }
        for sigma: Float in [0.3, 1.0, 2.5] {
            var x = values
            x.withUnsafeMutableBufferPointer { Augmenter.gaussianBlur($0.baseAddress!, frames: t, height: h, width: w, sigma: sigma) }
            for f in 0..<t {
                for c in 0..<3 {
                    let plane = GrayImage(width: w, height: h, pixels: (0..<(h * w)).map { values[(f * h * w + $0) * 3 + c] })
                    let expected = Blur.gaussian(plane, sigma: sigma).pixels
                    XCTAssertEqual((0..<(h * w)).map { x[(f * h * w + $0) * 3 + c] }, expected, "sigma \(sigma) frame \(f) channel \(c)")
                }
            }
        }
    }
}

extension LoaderTests {
    /// MCL's alignment target is clip A's motion-boundary map, cropped and flipped as its
    /// frames: equal to the Motion pathway's input when that input is motion boundaries, with
    /// augmentation on (random crops and flips), and present without a Motion pathway.
    func testTheAlignmentTargetIsClipAsMotionBoundaries() throws {
        let ds = try makeDataset(flowU: { f, x, y in Float((x * 3 + y * 5 + f) % 11) / 3 })
        var s = sampler(ds)
        s.sampling.motion = .motionBoundaries
        s.withAlignmentTarget = true
        let withMotion = try s.batch(at: LoaderPosition(epoch: 0, batch: 0))
        XCTAssertEqual(withMotion.alignmentTarget?.shape, [withMotion.rgbA.shape[0], s.sampling.frames, s.sampling.height, s.sampling.width])
        XCTAssertEqual(withMotion.alignmentTarget?.toArray(), withMotion.motionA?.toArray())
        XCTAssertTrue(withMotion.alignmentTarget!.toArray().contains { $0 > 0 })
        var visualOnly = s
        visualOnly.withMotion = false
        let alone = try visualOnly.batch(at: LoaderPosition(epoch: 0, batch: 0))
        XCTAssertNil(alone.motionA)
        XCTAssertEqual(alone.alignmentTarget?.toArray(), withMotion.alignmentTarget?.toArray(), "the same target with or without a Motion pathway")
        XCTAssertEqual(alone.rgbA.toArray(), withMotion.rgbA.toArray())
    }
}
