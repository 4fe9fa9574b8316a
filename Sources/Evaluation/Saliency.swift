import Backbones
import DataHDF5
import Foundation
import Losses
import Tensor
import Training
import Video

/// `maclr saliency`: where the visual encoder looks when it matches two clips of a video (MCL's
/// map P: the gradient of the cosine between the two clips' features with respect to a conv's
/// output, Grad-CAM weighted and ReLU'd), drawn over the first clip's frames beside the flow's
/// motion-boundary map, the target MCL's alignment loss pulls P towards.
public struct SaliencyPictures {
    public var selection: EncoderSelection
    /// The dataset entry (video name) to draw.
    public var video: String
    public var output: URL
    /// One of the encoder's `capturableLayers`; nil: the last conv.
    public var layer: String?
    public var weighting: MotionAlignment.Weighting = .gradient
    /// Each clip pixel becomes scale x scale pixels in the pictures.
    public var scale = 4

    public init(selection: EncoderSelection, video: String, output: URL, layer: String? = nil) {
        self.selection = selection; self.video = video; self.output = output; self.layer = layer
    }

    public struct Result {
        /// PNG per frame, then the GIF.
        public var files: [URL]
        /// The share of P's mass (summed over the clip) on the pixels where M is above its mean:
        /// how much of the saliency sits on what moves.
        public var massOnMotion: Double
        /// The share of the pixels where M is above its mean: what a map spread evenly would score.
        public var motionArea: Double
    }

    /// P's share of mass on the pixels where M is above its mean, and those pixels' share of all;
    /// `saliency` and `boundaries` hold the same pixels in the same order.
    public static func shareOnMotion(saliency: [Float], boundaries m: [Float]) -> (mass: Double, area: Double) {
        precondition(saliency.count == m.count && !m.isEmpty, "one saliency value per motion-boundary value")
        let meanM = m.reduce(0, +) / Float(m.count)
        var onMotion = 0.0, total = 0.0, moving = 0
        for (p, b) in zip(saliency, m) {
            total += Double(p)
            if b > meanM { onMotion += Double(p); moving += 1 }
        }
        return (total > 0 ? onMotion / total : 0, Double(moving) / Double(m.count))
    }

    public func write() throws -> Result {
        let (recipe, net, dataset) = try selection.resolveVisual()
        guard let index = dataset.entries.firstIndex(where: { $0.name == video }) else {
            let some = dataset.entries.prefix(3).map(\.name).joined(separator: ", ")
            throw TrainingError("\(dataset.folder.path): no video named '\(video)' (names look like \(some))")
        }
        guard dataset.hasFlow else { throw TrainingError("\(dataset.folder.path): has no flow to draw the motion boundaries from") }
        let layerName = layer ?? net.lastConvLayer
        guard net.capturableLayers.contains(layerName) else {
            throw TrainingError("--layer \(layerName): must be one of \(net.capturableLayers.joined(separator: ", "))")
        }
        let sampler = ClipSampler(dataset: dataset, indices: [index], sampling: recipe.sampling, augmentation: .none, seed: 0,
                                  batchSize: 1, withMotion: false)
        let e = dataset.entries[index]
        let span = (recipe.sampling.frames - 1) * recipe.sampling.stride + 1
        // the video's first clip, matched against its last
        let a = try sampler.plainClip(entry: index, start: 0)
        let b = try sampler.plainClip(entry: index, start: max(0, e.length - span))
        let p = saliency(net, layer: layerName, a.rgb, b.rgb)                    // (1, T', H', W')
        let (t, h, w) = (recipe.sampling.frames, recipe.sampling.height, recipe.sampling.width)
        let pFull = Self.upsample(p, frames: t, height: h, width: w)
        let m = a.boundaries!.toArray()
        let files = try draw(rgb: a.rgb, saliency: pFull, boundaries: m, frames: t, height: h, width: w)
        let share = Self.shareOnMotion(saliency: pFull, boundaries: m)
        return Result(files: files, massOnMotion: share.mass, motionArea: share.area)
    }

    /// P for clip `a` matched against clip `b` (batch-norm in inference mode).
    func saliency(_ net: VideoResNet, layer: String, _ a: Tensor, _ b: Tensor) -> Tensor {
        net.eval()
        let key = noGrad { net.features(b).l2Normalized() }
        return GradMode.with(true) {
            // the input is tracked so the graph is recorded even when the weights are frozen
            let input = a.detached()
            input.requiresGrad = true
            let (f, activation) = net.features(input, capturing: layer)
            let similarity = (f.l2Normalized() * key).sum()
            let g = gradients(of: similarity, wrt: [activation])[0] ?? Tensor.zeros(activation.shape)
            return noGrad { MotionAlignment.saliency(gradient: g, activation: activation, weighting: weighting) }
        }
    }

    /// (1, T', H', W') to T x H x W values: each frame takes its time step's map, bilinearly
    /// enlarged (pixel centres aligned).
    static func upsample(_ p: Tensor, frames t: Int, height h: Int, width w: Int) -> [Float] {
        let (tp, hp, wp) = (p.shape[1], p.shape[2], p.shape[3])
        var out = [Float](repeating: 0, count: t * h * w)
        for f in 0..<t {
            let step = min(tp - 1, f * tp / t)
            for y in 0..<h { for x in 0..<w {
                let fy = min(max((Float(y) + 0.5) * Float(hp) / Float(h) - 0.5, 0), Float(hp - 1))
                let fx = min(max((Float(x) + 0.5) * Float(wp) / Float(w) - 0.5, 0), Float(wp - 1))
                let y0 = Int(fy), x0 = Int(fx), y1 = min(y0 + 1, hp - 1), x1 = min(x0 + 1, wp - 1)
                let wy = fy - Float(y0), wx = fx - Float(x0)
                func v(_ yy: Int, _ xx: Int) -> Float { p.data[(step * hp + yy) * wp + xx] }
                out[(f * h + y) * w + x] = (v(y0, x0) * (1 - wx) + v(y0, x1) * wx) * (1 - wy) + (v(y1, x0) * (1 - wx) + v(y1, x1) * wx) * wy
            }}
        }
        return out
    }

    /// A heat colour for v in 0...1 (black-red-yellow-white).
    static func heat(_ v: Float) -> (Float, Float, Float) {
        let x = min(max(v, 0), 1) * 3
        return (min(x, 1) * 255, min(max(x - 1, 0), 1) * 255, min(max(x - 2, 0), 1) * 255)
    }

    /// Per frame: the frame with P over it (left) and with M over it (right), each map scaled to
    /// its clip-wide maximum, as frame-NNN.png, and all frames as saliency.gif.
    func draw(rgb: Tensor, saliency p: [Float], boundaries m: [Float], frames t: Int, height h: Int, width w: Int) throws -> [URL] {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let pMax = max(p.max() ?? 0, 1e-12), mMax = max(m.max() ?? 0, 1e-12)
        let (mean, std) = (ClipSampler.mean, ClipSampler.std)
        let s = scale, gap = 2 * s
        let width = 2 * w * s + gap, height = h * s
        var pictures: [[UInt8]] = []
        for f in 0..<t {
            var picture = [UInt8](repeating: 255, count: width * height * 3)
            for y in 0..<h { for x in 0..<w {
                let i = (f * h + y) * w + x
                let pixel = (0..<3).map { c in min(max((rgb.data[i * 3 + c] * std[c] + mean[c]) * 255, 0), 255) }
                for (panel, value) in [(0, p[i] / pMax), (1, m[i] / mMax)] {
                    let hot = Self.heat(value), alpha = 0.25 + 0.6 * min(max(value, 0), 1)
                    let colour = [hot.0, hot.1, hot.2].enumerated().map { c, v in UInt8(pixel[c] * (1 - alpha) + v * alpha) }
                    for dy in 0..<s { for dx in 0..<s {
                        let o = ((y * s + dy) * width + panel * (w * s + gap) + x * s + dx) * 3
                        picture[o] = colour[0]; picture[o + 1] = colour[1]; picture[o + 2] = colour[2]
                    }}
                }
            }}
            pictures.append(picture)
        }
        var files: [URL] = []
        for (f, picture) in pictures.enumerated() {
            let url = output.appendingPathComponent(String(format: "frame-%03d.png", f))
            let writer = try VideoWriter(path: url.path, width: width, height: height, fps: 1)
            try writer.append(rgb: picture)
            try writer.finish()
            files.append(url)
        }
        let gif = output.appendingPathComponent("saliency.gif")
        let animation = try VideoWriter(path: gif.path, width: width, height: height, fps: 4)
        for picture in pictures { try animation.append(rgb: picture) }
        try animation.finish()
        files.append(gif)
        return files
    }
}
