@testable import DataHDF5
import Foundation
import Tensor
import Video
import XCTest

/// maclr's ClipSampler against the PyTorch mirror's (benchmarks/torch_recipe.py) on one video:
/// for each seed both draw the random resized crop, the flip, colour jitter, grayscale and blur
/// from the same generator in the same order (scripts/make_maclr_step_fixture.py), and the
/// network inputs they make, RGB and flow, must agree value for value.
final class AugmentParityTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/augment.safetensors")

    func testAugmentedClipsMatchTheMirror() throws {
        let (tensors, meta) = try SafeTensors.read(Self.fixture)
        let rgb = tensors["video.rgb"]!, flow = tensors["video.flow"]!
        let (t, h, w) = (rgb.shape[0], rgb.shape[1], rgb.shape[2])
        let bound = Double(meta["flow_bound"]!)!
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("augment-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try ShardWriter(path: dir.appendingPathComponent("shard-00000.h5").path,
                                     attributes: ShardAttributes(height: h, width: w, fps: 10, flowAlgorithm: "tvl1", flowBound: bound))
        try writer.append(PreparedVideo(name: "v", source: "fixture", label: 0, frames: t, height: h, width: w,
                                        rgb: rgb.toArray().map { UInt8($0) }, flow: flow.toArray().map { UInt8($0) }))
        try writer.finish()
        var m = DatasetManifest(preparation: .init(size: "\(w)x\(h)", fps: 10, flowAlgorithm: "tvl1", flowBound: bound, videosPerShard: 1))
        m.shards = [try .init(measuring: "shard-00000.h5", in: dir, videos: 1, frames: t)]
        m.classes = ["a"]; m.splits = ["train": ["v"]]; m.complete = true
        try m.save(to: dir)
        let ds = try ShardDataset(folder: dir)

        let sampling = ClipSampling(frames: t, stride: 1, height: 12, width: 12, positiveGap: 0.5...10, motion: .flow)
        let a = Augmentation(cropScale: 0.3...1.0, jitterProbability: 0.8, grayscaleProbability: 0.3, blurProbability: 0.5, blurSigma: 0.5...1.5,
                             motionTemporalSampling: false, motionSpatialCropping: false)
        let sampler = ClipSampler(dataset: ds, indices: [0], sampling: sampling, augmentation: a, seed: 0, batchSize: 1, withMotion: true)
        let n = t * 12 * 12
        var worst: (rgb: Float, flow: Float) = (0, 0)
        for seed in 0..<Int(meta["seeds"]!)! {
            var rng = RandomGenerator(seed: UInt64(seed))
            let ours = Tensor(uninitialized: [t, 12, 12, 3]), oursFlow = Tensor(uninitialized: [t, 12, 12, 2])
            try sampler.clip(ds.entries[0], start: 0, rng: &rng, rgb: ours.data, motion: oursFlow.data, buffers: ClipSampler.ClipBuffers())
            let theirs = tensors["case\(seed).rgb"]!, theirsFlow = tensors["case\(seed).flow"]!
            let rgbError = zip(ours.toArray(), theirs.toArray()).map { abs($0 - $1) }.max()!
            let flowError = zip(oursFlow.toArray(), theirsFlow.toArray()).map { abs($0 - $1) }.max()!
            worst = (max(worst.rgb, rgbError), max(worst.flow, flowError))
            XCTAssertLessThan(rgbError, 1e-3, "seed \(seed): RGB")
            XCTAssertLessThan(flowError, 1e-4, "seed \(seed): flow")
            XCTAssertEqual(ours.count, 3 * n)
        }
        print("augmented clips against the mirror: worst |difference| RGB \(worst.rgb) (normalised units), flow \(worst.flow) (units of the bound)")
    }
}
