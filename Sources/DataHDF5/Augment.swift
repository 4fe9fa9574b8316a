import Foundation
import Tensor
import Video

/// Clip augmentations. Geometry (crop, resize, flip) is shared by RGB and flow, with flow
/// vectors transformed to match (a horizontal flip negates u; a resize scales u and v);
/// photometric changes (colour jitter, grayscale, blur) touch RGB only.
///
/// The values a recipe sets (its `data.*` keys) are required: the recipe schema holds their
/// defaults. The rest are the method's constants (CVRL's jitter strengths, MCL's 0.7).
public struct Augmentation: Codable, Equatable, Sendable {
    public var enabled = true
    /// Random-resized-crop area fraction and aspect-ratio ranges.
    public var cropScale: ClosedRange<Double>
    public var cropRatio: ClosedRange<Double> = 0.75...1.3333
    public var flipProbability = 0.5
    public var jitterProbability: Double
    public var brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1
    public var grayscaleProbability: Double
    public var blurProbability: Double
    public var blurSigma: ClosedRange<Double>
    /// MCL: drop static clips (keep the top half by motion-boundary magnitude with probability 0.7).
    public var motionTemporalSampling: Bool
    public var motionTopProbability = 0.7
    /// MCL: random-resized crops must cover the box of the top 10% cells of a 7x7 motion grid.
    public var motionSpatialCropping: Bool

    public init(cropScale: ClosedRange<Double>, jitterProbability: Double, grayscaleProbability: Double, blurProbability: Double,
                blurSigma: ClosedRange<Double>, motionTemporalSampling: Bool, motionSpatialCropping: Bool) {
        self.cropScale = cropScale; self.jitterProbability = jitterProbability; self.grayscaleProbability = grayscaleProbability
        self.blurProbability = blurProbability; self.blurSigma = blurSigma
        self.motionTemporalSampling = motionTemporalSampling; self.motionSpatialCropping = motionSpatialCropping
    }

    /// No augmentation at all: the clip as stored, resized to the sampling's size.
    public static let none: Augmentation = {
        var a = Augmentation(cropScale: 1...1, jitterProbability: 0, grayscaleProbability: 0, blurProbability: 0, blurSigma: 0...0,
                             motionTemporalSampling: false, motionSpatialCropping: false)
        a.enabled = false; a.flipProbability = 0
        return a
    }()
}

/// A crop window in source pixels.
public struct CropBox: Equatable, Sendable {
    public init(x: Double, y: Double, width: Double, height: Double) { self.x = x; self.y = y; self.width = width; self.height = height }
    public var x: Double, y: Double, width: Double, height: Double
    public func intersectionArea(_ o: CropBox) -> Double {
        max(0, min(x + width, o.x + o.width) - max(x, o.x)) * max(0, min(y + height, o.y + o.height) - max(y, o.y))
    }
}

enum Augmenter {
    /// torchvision's RandomResizedCrop box (10 tries, then the central crop), optionally required
    /// to cover `mustCover` by `coverage` of its area (MCL's motion-focused cropping).
    static func randomCrop(width w: Int, height h: Int, _ a: Augmentation, rng: inout RandomGenerator,
                           mustCover: CropBox? = nil, coverage: Double = 0) -> CropBox {
        let area = Double(w * h)
        for _ in 0..<(mustCover == nil ? 10 : 30) {
            let target = area * (a.cropScale.lowerBound + (a.cropScale.upperBound - a.cropScale.lowerBound) * Double(rng.uniform()))
            let logRatio = log(a.cropRatio.lowerBound) + (log(a.cropRatio.upperBound) - log(a.cropRatio.lowerBound)) * Double(rng.uniform())
            let ratio = exp(logRatio)
            let cw = (target * ratio).squareRoot(), ch = (target / ratio).squareRoot()
            guard cw <= Double(w), ch <= Double(h) else { continue }
            let box = CropBox(x: Double(rng.uniform()) * (Double(w) - cw), y: Double(rng.uniform()) * (Double(h) - ch), width: cw, height: ch)
            if let m = mustCover, box.intersectionArea(m) < coverage * m.width * m.height { continue }
            return box
        }
        if let m = mustCover {
            // Smallest square-ish box around the motion, grown to the minimum scale.
            let side = max(m.width, m.height, (area * a.cropScale.lowerBound).squareRoot())
            let cw = min(Double(w), side), ch = min(Double(h), side)
            return CropBox(x: min(max(0, m.x + m.width / 2 - cw / 2), Double(w) - cw), y: min(max(0, m.y + m.height / 2 - ch / 2), Double(h) - ch),
                           width: cw, height: ch)
        }
        let s = Double(min(w, h))
        return CropBox(x: (Double(w) - s) / 2, y: (Double(h) - s) / 2, width: s, height: s)
    }

    /// The bounding box of the top 10% cells of a 7x7 grid of mean motion-boundary magnitude,
    /// and MCL's required coverage for its size (0.9 small, 0.8 medium, 0.7 large).
    static func motionBox(boundaries: [Float], width w: Int, height h: Int) -> (CropBox, Double) {
        var cells = [Float](repeating: 0, count: 49)
        for y in 0..<h { for x in 0..<w { cells[(y * 7 / h) * 7 + x * 7 / w] += boundaries[y * w + x] } }
        let top = cells.enumerated().sorted { $0.element > $1.element }.prefix(5).map(\.offset)   // 10% of 49, rounded
        let cx = top.map { $0 % 7 }, cy = top.map { $0 / 7 }
        let box = CropBox(x: Double(cx.min()!) * Double(w) / 7, y: Double(cy.min()!) * Double(h) / 7,
                          width: Double(cx.max()! - cx.min()! + 1) * Double(w) / 7, height: Double(cy.max()! - cy.min()! + 1) * Double(h) / 7)
        let fraction = box.width * box.height / Double(w * h)
        return (box, fraction < 1.0 / 9 ? 0.9 : (fraction < 0.25 ? 0.8 : 0.7))
    }

    /// Bilinear resample of (T, H, W, C) uint8 frames inside `box` to (T, outH, outW, C) floats,
    /// optionally mirrored left-right.
    @inline(__always)
    static func cropResize(_ src: [UInt8], frames t: Int, height h: Int, width w: Int, channels c: Int,
                           box: CropBox, outHeight oh: Int, outWidth ow: Int, flip: Bool, into out: UnsafeMutablePointer<Float>,
                           transform: (Int, Float) -> Float) {
        let sx = box.width / Double(ow), sy = box.height / Double(oh)
        // Each output column's and row's two bilinear taps (element offsets into a frame: a pixel
        // at x is x * c, a row at y is y * w * c) and weight, computed once per clip.
        var columns = [(left: Int, right: Int, wx: Float)](), rows = [(top: Int, bottom: Int, wy: Float)]()
        columns.reserveCapacity(ow); rows.reserveCapacity(oh)
        for x in 0..<ow {
            let xx = flip ? ow - 1 - x : x
            let fx = min(max(box.x + (Double(xx) + 0.5) * sx - 0.5, 0), Double(w - 1))
            let x0 = Int(fx)
            columns.append((x0 * c, min(x0 + 1, w - 1) * c, Float(fx - Double(x0))))
        }
        for y in 0..<oh {
            let fy = min(max(box.y + (Double(y) + 0.5) * sy - 0.5, 0), Double(h - 1))
            let y0 = Int(fy)
            rows.append((y0 * w * c, min(y0 + 1, h - 1) * w * c, Float(fy - Double(y0))))
        }
        src.withUnsafeBufferPointer { sp in
            columns.withUnsafeBufferPointer { cols in
                for f in 0..<t {
                    let frame = sp.baseAddress! + f * h * w * c
                    for (y, row) in rows.enumerated() {
                        let top = frame + row.top, bottom = frame + row.bottom, wy = row.wy
                        var o = out + (f * oh + y) * ow * c
                        for col in cols {
                            let wx = col.wx
                            for ch in 0..<c {
                                let a = Float(top[col.left + ch]), b = Float(top[col.right + ch])
                                let d = Float(bottom[col.left + ch]), e = Float(bottom[col.right + ch])
                                o[ch] = transform(ch, (a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy)
                            }
                            o += c
                        }
                    }
                }
            }
        }
    }

    /// Colour jitter (brightness, contrast, saturation, hue as a rotation in YIQ), grayscale and
    /// Gaussian blur on (T, H, W, 3) values in 0...1, the same draw for every frame of the clip.
    static func photometric(_ x: UnsafeMutablePointer<Float>, frames t: Int, height h: Int, width w: Int, _ a: Augmentation,
                            rng: inout RandomGenerator) {
        let n = t * h * w
        if Double(rng.uniform()) < a.jitterProbability {
            let b = Float(1 + a.brightness * Double(2 * rng.uniform() - 1))
            let c = Float(1 + a.contrast * Double(2 * rng.uniform() - 1))
            let s = Float(1 + a.saturation * Double(2 * rng.uniform() - 1))
            let hAngle = Float(a.hue * Double(2 * rng.uniform() - 1)) * 2 * .pi
            var mean: Float = 0
            for i in 0..<n { mean += 0.299 * x[3 * i] + 0.587 * x[3 * i + 1] + 0.114 * x[3 * i + 2] }
            mean /= Float(n)
            let ch = cos(hAngle), sh = sin(hAngle)
            for i in 0..<n {
                var r = x[3 * i] * b, g = x[3 * i + 1] * b, bl = x[3 * i + 2] * b
                r = (r - mean) * c + mean; g = (g - mean) * c + mean; bl = (bl - mean) * c + mean
                let yv = 0.299 * r + 0.587 * g + 0.114 * bl
                r = yv + (r - yv) * s; g = yv + (g - yv) * s; bl = yv + (bl - yv) * s
                // hue: rotate the chroma (I, Q) plane
                let iq = 0.596 * r - 0.274 * g - 0.322 * bl, q = 0.211 * r - 0.523 * g + 0.312 * bl
                let i2 = iq * ch - q * sh, q2 = iq * sh + q * ch
                x[3 * i] = min(max(yv + 0.956 * i2 + 0.621 * q2, 0), 1)
                x[3 * i + 1] = min(max(yv - 0.272 * i2 - 0.647 * q2, 0), 1)
                x[3 * i + 2] = min(max(yv - 1.106 * i2 + 1.703 * q2, 0), 1)
            }
        }
        if Double(rng.uniform()) < a.grayscaleProbability {
            for i in 0..<n {
                let yv = 0.299 * x[3 * i] + 0.587 * x[3 * i + 1] + 0.114 * x[3 * i + 2]
                x[3 * i] = yv; x[3 * i + 1] = yv; x[3 * i + 2] = yv
            }
        }
        if Double(rng.uniform()) < a.blurProbability {
            let sigma = Float(a.blurSigma.lowerBound + (a.blurSigma.upperBound - a.blurSigma.lowerBound) * Double(rng.uniform()))
            gaussianBlur(x, frames: t, height: h, width: w, sigma: sigma)
        }
    }

    /// Gaussian blur of (T, H, W, 3) values in place, frame by frame: rows then columns, taps to
    /// 3 sigma, edges clamped; the three channels at once, each summed in the order of
    /// `Blur.gaussian`'s single-plane blur (so the same values).
    static func gaussianBlur(_ x: UnsafeMutablePointer<Float>, frames t: Int, height h: Int, width w: Int, sigma: Float) {
        guard sigma > 0 else { return }
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { Foundation.exp(-Float($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        let frame = h * w * 3
        let rowsBlurred = UnsafeMutablePointer<Float>.allocate(capacity: frame)
        defer { rowsBlurred.deallocate() }
        kernel.withUnsafeBufferPointer { k in
            for f in 0..<t {
                let pixels = x + f * frame
                for y in 0..<h {
                    let row = pixels + y * w * 3, out = rowsBlurred + y * w * 3
                    for px in 0..<w {
                        var s0: Float = 0, s1: Float = 0, s2: Float = 0
                        for i in 0..<k.count {
                            let q = row + min(max(px + i - radius, 0), w - 1) * 3
                            s0 += k[i] * q[0]; s1 += k[i] * q[1]; s2 += k[i] * q[2]
                        }
                        out[px * 3] = s0; out[px * 3 + 1] = s1; out[px * 3 + 2] = s2
                    }
                }
                for y in 0..<h {
                    for px in 0..<w {
                        var s0: Float = 0, s1: Float = 0, s2: Float = 0
                        for i in 0..<k.count {
                            let q = rowsBlurred + (min(max(y + i - radius, 0), h - 1) * w + px) * 3
                            s0 += k[i] * q[0]; s1 += k[i] * q[1]; s2 += k[i] * q[2]
                        }
                        let o = pixels + (y * w + px) * 3
                        o[0] = s0; o[1] = s1; o[2] = s2
                    }
                }
            }
        }
    }
}

/// The random-resized-crop sampler, for tools and tests that want to see the crop it draws.
public enum CropSampler {
    public static func sample(width: Int, height: Int, _ a: Augmentation, rng: inout RandomGenerator, cover: CropBox?, coverage: Double) -> CropBox {
        Augmenter.randomCrop(width: width, height: height, a, rng: &rng, mustCover: cover, coverage: coverage)
    }
}
