import DataHDF5
import Foundation
import Tensor
import Training
import Video

/// Small shards with moving-square videos and their exact flow, made directly (no FFmpeg).
public func makeTinyDataset(_ folder: URL, videos: Int = 12, frames: Int = 24, size: Int = 32) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let path = folder.appendingPathComponent("shard-00000.h5").path
    let w = try ShardWriter(path: path, attributes: ShardAttributes(height: size, width: size, fps: 8, flowAlgorithm: "tvl1", flowBound: 20))
    var names: [String] = [], train: [String] = [], test: [String] = []
    var rng = RandomGenerator(seed: 11)
    for v in 0..<videos {
        let label = v % 2
        let dx = label == 0 ? 1 : -1
        var rgb = [UInt8](repeating: 0, count: frames * size * size * 3), flow = [UInt8](repeating: 128, count: frames * size * size * 2)
        let y0 = 8 + Int(rng.next() % 12), x0 = 10 + Int(rng.next() % 8)
        for f in 0..<frames { for y in 0..<size { for x in 0..<size {
            let i = (f * size + y) * size + x
            let inside = (y0..<(y0 + 8)).contains(y) && ((x0 + dx * f / 2)..<(x0 + dx * f / 2 + 8)).contains(x)
            let noise = UInt8(rng.next() % 40)
            rgb[3 * i] = inside ? 220 : 30 + noise; rgb[3 * i + 1] = inside ? 200 : 60 + noise; rgb[3 * i + 2] = inside ? 40 : 90 + noise
            if inside && f < frames - 1 { flow[2 * i] = Motion.quantize(Float(dx) * 0.5, bound: 20) }
        }}}
        let name = "v\(v)"
        names.append(name)
        (v < videos * 3 / 4 ? { train.append(name) } : { test.append(name) })()
        try w.append(PreparedVideo(name: name, source: "tiny", label: label, frames: frames, height: size, width: size, rgb: rgb, flow: flow))
    }
    try w.finish()
    var m = DatasetManifest(preparation: .init(size: "\(size)x\(size)", fps: 8, flowAlgorithm: "tvl1", flowBound: 20, videosPerShard: videos))
    m.shards = [try .init(measuring: "shard-00000.h5", in: folder, videos: videos, frames: videos * frames)]
    m.classes = ["right", "left"]; m.splits = ["train": train, "test": test]; m.complete = true
    try m.save(to: folder)
}

/// A recipe for a network small enough to train in a test.
public func tinyRecipe(dataset: URL, output: URL, _ changes: [String: AnyHashable] = [:]) throws -> Recipe {
    var r = Recipe.defaults
    let values: [String: AnyHashable] = [
        "data.dataset": dataset.path, "data.clip_frames": 4, "data.clip_stride": 2, "data.crop": 32, "data.loader_workers": 2,
        "data.positive_gap": [0.25, 1.0],
        "model.width": 0.0625, "model.motion_width": 0.0625, "model.head_hidden": 16, "model.embedding": 8, "model.queue_size": 16,
        "optim.batch_size": 4, "optim.steps": 6, "optim.warmup_steps": 2, "optim.lr": 0.05,
        "train.output": output.path, "train.checkpoint_every": 3, "train.log_every": 1, "eval.clips_per_video": 2,
    ]
    // together: keys bound to each other (the objective and model.init_from) are checked once all are set
    try r.set(values.merging(changes, uniquingKeysWith: { $1 }).map { (key: $0.key, value: $0.value.base) })
    return r
}
